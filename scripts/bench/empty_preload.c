/* An LD_PRELOAD library that does nothing: what loading any preload costs
 * a process image (floor.py's first traced variant). */
int memscope_bench_empty_preload(void) { return 0; }
