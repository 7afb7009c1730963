// C++ allocation churn for the benchmarks: new/delete, std::string,
// std::vector, std::map (deterministic). usage: cpp_churn ITERS
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct Node {
    uint64_t key;
    std::string name;
    std::vector<int> data;
};

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    uint64_t rng = 42, check = 0;
    std::map<uint64_t, std::unique_ptr<Node>> live;
    for (long i = 0; i < iters; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        switch (rng % 3) {
        case 0: {
            auto n = std::make_unique<Node>();
            n->key = rng % 8192;
            n->name = "node-" + std::to_string(i);
            n->data.resize((rng >> 8) % 32);
            live[n->key] = std::move(n);
            break;
        }
        case 1: {
            auto it = live.find(rng % 8192);
            if (it != live.end()) {
                check += it->second->name.size();
                live.erase(it);
            }
            break;
        }
        default: {
            std::vector<std::string> tmp;
            for (uint64_t k = 0; k < (rng >> 16) % 8; k++) tmp.emplace_back(40, 'x');
            check += tmp.size();
        }
        }
    }
    printf("checksum=%llu live=%zu\n", (unsigned long long)check, live.size());
    return 0;
}
