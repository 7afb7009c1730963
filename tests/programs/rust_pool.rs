//! A thread pool in the manner of rayon: WORKERS threads take jobs from a
//! shared queue; each job allocates a Vec of `len` u64 on the worker, sends
//! it back to the main thread, which frees it (so every block is born on
//! one thread and dies on another). usage: rust_pool WORKERS JOBS
use std::sync::{mpsc, Arc, Mutex};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (workers, jobs) = (args[0], args[1]);
    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (out_tx, out_rx) = mpsc::channel::<Vec<u64>>();
    let pool: Vec<_> = (0..workers)
        .map(|_| {
            let rx = Arc::clone(&job_rx);
            let tx = out_tx.clone();
            std::thread::spawn(move || loop {
                let job = rx.lock().unwrap().recv();
                match job {
                    Ok(len) => {
                        let v = vec![len as u64; len];
                        tx.send(v).unwrap();
                    }
                    Err(_) => break,
                }
            })
        })
        .collect();
    drop(out_tx);
    for j in 0..jobs {
        job_tx.send(1 + j % 64).unwrap();
    }
    drop(job_tx);
    let mut sum = 0u64;
    for v in out_rx {
        sum += v.iter().sum::<u64>();
    }
    for t in pool {
        t.join().unwrap();
    }
    println!("{sum}");
}
