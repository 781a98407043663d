// A tiny thread pool-free parallel loop: dynamic chunks handed out by one atomic counter.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace badpix {

// Runs fn(task, thread_index) for every task in [0, n_tasks) on up to n_threads threads.
// Tasks are claimed one at a time (callers make tasks coarse, e.g. a tile of pixels), which
// balances uneven work without a scheduler. The first exception is rethrown on the caller.
template <class Fn>
void parallel_for(std::size_t n_tasks, int n_threads, Fn&& fn) {
    std::size_t nt = static_cast<std::size_t>(std::max(1, n_threads));
    nt = std::min(nt, n_tasks);
    if (nt <= 1) {
        for (std::size_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&](std::size_t tid) {
        try {
            for (;;) {
                std::size_t t = next.fetch_add(1, std::memory_order_relaxed);
                if (t >= n_tasks) break;
                fn(t, tid);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            next.store(n_tasks);  // stop the others early
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(nt - 1);
    for (std::size_t i = 1; i < nt; ++i) threads.emplace_back(worker, i);
    worker(0);
    for (auto& th : threads) th.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace badpix
