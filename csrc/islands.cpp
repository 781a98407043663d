// Connected components of nonzero pixels by iterative flood fill (explicit stack, any size).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core.hpp"

namespace badpix {

void remove_islands(std::uint8_t* mask, std::size_t rows, std::size_t cols, std::size_t min_size,
                    int connectivity) {
    if (connectivity != 4 && connectivity != 8) throw std::invalid_argument("connectivity must be 4 or 8");
    const std::size_t n = rows * cols;
    std::vector<std::uint8_t> seen(n, 0);
    std::vector<std::size_t> stack, comp;
    static const int dr[8] = {-1, 1, 0, 0, -1, -1, 1, 1};
    static const int dc[8] = {0, 0, -1, 1, -1, 1, -1, 1};
    for (std::size_t start = 0; start < n; ++start) {
        if (!mask[start] || seen[start]) continue;
        comp.clear();
        stack.push_back(start);
        seen[start] = 1;
        while (!stack.empty()) {
            const std::size_t q = stack.back();
            stack.pop_back();
            comp.push_back(q);
            const std::ptrdiff_t r = static_cast<std::ptrdiff_t>(q / cols);
            const std::ptrdiff_t c = static_cast<std::ptrdiff_t>(q % cols);
            for (int d = 0; d < connectivity; ++d) {
                const std::ptrdiff_t rr = r + dr[d], cc = c + dc[d];
                if (rr < 0 || cc < 0 || rr >= static_cast<std::ptrdiff_t>(rows) ||
                    cc >= static_cast<std::ptrdiff_t>(cols))
                    continue;
                const std::size_t nq = static_cast<std::size_t>(rr) * cols + static_cast<std::size_t>(cc);
                if (mask[nq] && !seen[nq]) {
                    seen[nq] = 1;
                    stack.push_back(nq);
                }
            }
        }
        if (comp.size() < min_size)
            for (std::size_t q : comp) mask[q] = 0;
    }
}

}  // namespace badpix
