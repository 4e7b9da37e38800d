// C++ exceptions under LD_PRELOAD: strata carries GCC's unwinder inside it
// (crates/malloc/build.rs) with its symbols local, so the program's own
// libgcc_s must still unwind these frames, and the strings, vectors and
// exception objects along the way are strata's blocks.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

static int depth(int n) {
    std::vector<std::string> v(n + 1, std::string(100, char('a' + n % 26)));
    if (n == 0) throw std::runtime_error("bottom " + v[0]);
    return depth(n - 1) + int(v.size());
}

int main() {
    int caught = 0;
    for (int i = 0; i < 10000; i++) {
        try {
            depth(20);
        } catch (const std::exception &e) {
            caught += std::string(e.what()) == "bottom " + std::string(100, 'a');
        }
    }
    std::printf("caught %d\n", caught);
    return caught == 10000 ? 0 : 1;
}
