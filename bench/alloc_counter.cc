// Global operator new/delete replacements that count; see alloc_counter.h.
#include "bench/alloc_counter.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<uint64_t> g_allocs{0};
std::atomic<size_t> g_live{0};
std::atomic<size_t> g_peak{0};

void* Count(void* p) {
  if (!p) throw std::bad_alloc();
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  size_t live = g_live.fetch_add(malloc_usable_size(p), std::memory_order_relaxed) + malloc_usable_size(p);
  size_t peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
  return p;
}
void Uncount(void* p) {
  if (p) g_live.fetch_sub(malloc_usable_size(p), std::memory_order_relaxed);
}
}  // namespace

void* operator new(size_t n) { return Count(std::malloc(n ? n : 1)); }
void* operator new[](size_t n) { return Count(std::malloc(n ? n : 1)); }
void* operator new(size_t n, std::align_val_t a) {
  return Count(std::aligned_alloc(static_cast<size_t>(a), (n + static_cast<size_t>(a) - 1) & ~(static_cast<size_t>(a) - 1)));
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { Uncount(p); std::free(p); }
void operator delete[](void* p) noexcept { Uncount(p); std::free(p); }
void operator delete(void* p, size_t) noexcept { Uncount(p); std::free(p); }
void operator delete[](void* p, size_t) noexcept { Uncount(p); std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { Uncount(p); std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Uncount(p); std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { Uncount(p); std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { Uncount(p); std::free(p); }

namespace vakt::bench {
AllocStats CurrentAllocStats() {
  return {g_allocs.load(), g_live.load(), g_peak.load()};
}
void ResetPeak() { g_peak.store(g_live.load()); }
}  // namespace vakt::bench
