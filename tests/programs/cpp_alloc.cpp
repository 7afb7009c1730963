// C++ allocations arrive through malloc/free (operator new/delete) and
// aligned_alloc (aligned new). Program-made: 3 news of known sizes, a vector
// grown to 100 ints with reserve (one 400-byte block), one aligned new of
// 256 bytes at 64; everything freed except the 48-byte object.
#include <cstdlib>
#include <new>
#include <vector>

struct Big { char data[1000]; };
struct alignas(64) Aligned { char data[256]; };

int main() {
    Big *b = new Big();
    int *arr = new int[25];
    char *kept = new char[48];
    std::vector<int> v;
    v.reserve(100);
    for (int i = 0; i < 100; i++) v.push_back(i);
    Aligned *a = new Aligned();
    delete a;
    delete[] arr;
    delete b;
    kept[0] = 1;
    return v.size() == 100 ? 0 : 1;
}
