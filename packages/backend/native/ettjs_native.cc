// Native CPU kernels for @ettjs/backend: single-precision GEMM (Eigen's blocked kernels) and
// im2col convolutions, run on a small thread pool, reading and writing tfjs-backend-wasm's heap
// in place. Built by native/build.mjs once per instruction set (x86-64-v3 = AVX2+FMA, x86-64-v4 =
// AVX-512); the JavaScript loader picks the file the CPU supports, so no instruction beyond it runs.
//
// Every entry point takes the heap as a Float32Array and element offsets into it, so no data is
// copied between JavaScript and C++. Shapes are validated in JavaScript (src/native/); here they are
// only checked against the heap's length, so a wrong call throws instead of writing out of bounds.
#define EIGEN_DONT_PARALLELIZE
#include <node_api.h>
#include <xmmintrin.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const MatRM, Eigen::Unaligned, Eigen::OuterStride<>>;
using Map = Eigen::Map<MatRM, Eigen::Unaligned, Eigen::OuterStride<>>;

// ---------------------------------------------------------------------------------------------
// Denormals. A product of two small gradients (say 1e-20 * 1e-20) is a denormal float, and x86 runs
// arithmetic on denormals through a microcode assist: a 512³ GEMM took 1.3 s instead of 1.8 ms.
// Like TensorFlow's and oneDNN's CPU kernels, these kernels flush denormals to zero (MXCSR FTZ +
// DAZ): on the pool's workers for good, on the calling thread only for the duration of a call,
// since that thread runs V8, whose JavaScript arithmetic must keep IEEE denormals.

constexpr unsigned kFlushDenormals = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)

class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushDenormals); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_;
};

// ---------------------------------------------------------------------------------------------
// Thread pool: `threads - 1` workers plus the calling thread. run(tasks, fn) calls fn(i) for
// i < tasks, spread over the threads, and returns when all are done.
//
// A training step calls the pool about 1 500 times, a few microseconds of JavaScript apart. Waking a
// worker sleeping on a condition variable (a futex, then the hypervisor waking an idle vCPU) cost
// tens of microseconds per call on these VMs, so after a run the workers spin for a while
// (default 200 µs; setSpin, ETT_NATIVE_SPIN_US) watching for the next one before they
// sleep, and the caller spins for its workers to finish before it blocks. OpenMP runtimes do the
// same (GOMP_SPINCOUNT, KMP_BLOCKTIME). 0 turns spinning off.

inline void cpu_relax() { _mm_pause(); }

class Pool {
 public:
  Pool(int threads, int spinMicros) { setSpin(spinMicros); resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  int spin() const { return spinMicros_.load(std::memory_order_relaxed); }
  void setSpin(int micros) { spinMicros_.store(std::max(0, std::min(micros, 100000)), std::memory_order_relaxed); }

  void resize(int threads) {
    stop();
    threads = std::max(1, std::min(threads, 64));
    quit_ = false;
    quit_flag_.store(false, std::memory_order_relaxed);
    for (int t = 1; t < threads; t++) workers_.emplace_back([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      quit_flag_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void run(int tasks, const std::function<void(int)>& fn) {
    if (tasks <= 0) return;
    if (tasks == 1 || workers_.empty()) {
      for (int i = 0; i < tasks; i++) fn(i);
      return;
    }
    // Each run has its own counter: a worker that woke for an earlier run (and did none of its
    // tasks) may still be between taking an index and comparing it with the task count when the
    // next run starts; with one shared counter it ran a task of the new run twice, and the pending
    // count then skipped zero and the caller waited forever (seen in CI).
    auto job = std::make_shared<Job>(&fn, tasks);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();  // no system call when every worker is spinning (no waiters)
    work(*job);
    if (job->pending.load(std::memory_order_acquire) != 0 && spin() > 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin());
      for (int i = 1; job->pending.load(std::memory_order_acquire) != 0; i++) {
        cpu_relax();
        if ((i & 63) == 0 && std::chrono::steady_clock::now() > until) break;
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return job->pending.load(std::memory_order_acquire) == 0; });
    job_.reset();
  }

 private:
  struct Job {
    Job(const std::function<void(int)>* f, int n) : fn(f), tasks(n), pending(n) {}
    const std::function<void(int)>* fn;
    const int tasks;
    std::atomic<int> next{0};
    std::atomic<int> pending;
  };

  void work(Job& job) {
    int finished = 0;
    for (int i = job.next.fetch_add(1); i < job.tasks; i = job.next.fetch_add(1)) {
      (*job.fn)(i);
      finished++;
    }
    // The last task's finisher takes the lock to notify, so a caller that has just checked `pending`
    // under the lock and is about to wait cannot miss the notification.
    if (finished > 0 && job.pending.fetch_sub(finished, std::memory_order_acq_rel) == finished) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_all();
    }
  }

  void loop() {
    _mm_setcsr(_mm_getcsr() | kFlushDenormals);
    std::uint64_t seen = 0;
    for (;;) {
      // Spin first: the next run usually starts within microseconds.
      if (generation_.load(std::memory_order_acquire) == seen && spin() > 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin());
        for (int i = 1; generation_.load(std::memory_order_acquire) == seen && !quit_flag_.load(std::memory_order_relaxed); i++) {
          cpu_relax();
          if ((i & 63) == 0 && std::chrono::steady_clock::now() > until) break;
        }
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return quit_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (quit_) return;
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (job) work(*job);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::shared_ptr<Job> job_;  // the current run, guarded by mu_
  std::atomic<std::uint64_t> generation_{0};  // written under mu_, read while spinning without it
  bool quit_ = false;                          // guarded by mu_
  std::atomic<bool> quit_flag_{false};         // quit_, for the spin loop
  std::atomic<int> spinMicros_{0};
};

// One pool per process, shared by every Node environment (main thread, workers) that loads the
// addon; `calls` serialises the entry points, so the pool and the scratch buffer are never shared by
// two calls at once.
Pool* pool = nullptr;
int environments = 0;
std::mutex calls;

// ---------------------------------------------------------------------------------------------
// GEMM. C[m, n] (ldc) = op(A)[m, k] * op(B)[k, n], row-major; op(A) = A or Aᵀ (A stored [k, m]).

// Below Eigen's EIGEN_GEMM_TO_COEFFBASED_THRESHOLD (m + n + k < 20) Eigen multiplies coefficient by
// coefficient, vectorized from the operands' alignment, so the same product of the same values gave
// different last bits depending on where the tensors sat in the heap (an LM's first forward pass
// differed from its second by 1e-6). These sizes run this fixed-order loop instead.
void gemm_small(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                bool accumulate) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float acc = accumulate ? c[std::int64_t(i) * ldc + j] : 0.0f;
      for (int p = 0; p < k; p++) {
        const float av = ta ? a[std::int64_t(p) * lda + i] : a[std::int64_t(i) * lda + p];
        const float bv = tb ? b[std::int64_t(j) * ldb + p] : b[std::int64_t(p) * ldb + j];
        acc += av * bv;
      }
      c[std::int64_t(i) * ldc + j] = acc;
    }
}

void gemm_block(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                bool accumulate) {
  if (m + n + k < 20) {
    gemm_small(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  Map C(c, m, n, Eigen::OuterStride<>(ldc));
  if (k == 0) {
    if (!accumulate) C.setZero();
    return;
  }
  ConstMap A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  ConstMap B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  if (accumulate) {
    if (!ta && !tb) C.noalias() += A * B;
    else if (ta && !tb) C.noalias() += A.transpose() * B;
    else if (!ta && tb) C.noalias() += A * B.transpose();
    else C.noalias() += A.transpose() * B.transpose();
  } else {
    if (!ta && !tb) C.noalias() = A * B;
    else if (ta && !tb) C.noalias() = A.transpose() * B;
    else if (!ta && tb) C.noalias() = A * B.transpose();
    else C.noalias() = A.transpose() * B.transpose();
  }
}

// Below about this many multiply-adds a product runs on one thread: waking the pool costs more.
constexpr double kParallelMacs = 1 << 18;

// batch products C[g] = op(A[g]) * op(B[g]) (or C[g] += … when accumulating) with element strides (0 = broadcast). Work is split over
// the batch when there are enough products, else over rows (or columns when m is small) of each.
void batched_gemm(int batch, bool ta, bool tb, int m, int n, int k, const float* a, std::int64_t sa, const float* b,
                  std::int64_t sb, float* c, bool accumulate = false) {
  const int lda = ta ? m : k, ldb = tb ? k : n;
  const int threads = pool->size();
  const double macs = static_cast<double>(m) * n * k * batch;
  if (threads == 1 || macs < kParallelMacs) {
    for (int g = 0; g < batch; g++) gemm_block(ta, tb, m, n, k, a + g * sa, lda, b + g * sb, ldb, c + std::int64_t(g) * m * n, n, accumulate);
    return;
  }
  if (batch >= 2 * threads) {
    pool->run(batch, [&](int g) { gemm_block(ta, tb, m, n, k, a + g * sa, lda, b + g * sb, ldb, c + std::int64_t(g) * m * n, n, accumulate); });
    return;
  }
  // Split each product into `parts` slabs of rows (or columns) in multiples of 16.
  const bool byRows = m >= n || m >= 64;
  const int extent = byRows ? m : n;
  int parts = std::min(threads, std::max(1, extent / 16));
  const int step = ((extent + parts - 1) / parts + 15) / 16 * 16;
  parts = (extent + step - 1) / step;
  pool->run(batch * parts, [&](int task) {
    const int g = task / parts, p = task % parts;
    const int lo = p * step, len = std::min(step, extent - lo);
    const float* ag = a + g * sa;
    const float* bg = b + g * sb;
    float* cg = c + std::int64_t(g) * m * n;
    if (byRows) {
      // Rows lo.. of op(A): A[lo*lda] untransposed, column offset lo when transposed.
      gemm_block(ta, tb, len, n, k, ta ? ag + lo : ag + std::int64_t(lo) * lda, lda, bg, ldb, cg + std::int64_t(lo) * n, n, accumulate);
    } else {
      gemm_block(ta, tb, m, len, k, ag, lda, tb ? bg + std::int64_t(lo) * ldb : bg + lo, ldb, cg + lo, n, accumulate);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Convolution geometry (NHWC input, HWIO filter), as tfjs's computeConv2DInfo gives it.

struct Conv {
  int batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, dilH, dilW, padTop, padLeft;
  std::int64_t patch() const { return std::int64_t(kH) * kW * inC; }
  std::int64_t rows() const { return std::int64_t(batch) * outH * outW; }
};

// col[r - r0, (ky, kx, ci)] for output positions r0 <= r < r1, r = (b, oy, ox): the input pixel the
// filter tap reads, 0 in the padding. Rows are split over the pool.
void im2col(const Conv& cv, const float* x, std::int64_t r0, std::int64_t r1, float* col) {
  const std::int64_t patch = cv.patch();
  const int tasks = static_cast<int>(std::min<std::int64_t>(r1 - r0, pool->size() * 4));
  const std::int64_t per = (r1 - r0 + tasks - 1) / tasks;
  pool->run(tasks, [&](int t) {
    const std::int64_t lo = r0 + t * per, hi = std::min(r1, lo + per);
    for (std::int64_t r = lo; r < hi; r++) {
      const int ox = static_cast<int>(r % cv.outW), oy = static_cast<int>((r / cv.outW) % cv.outH);
      const std::int64_t b = r / (std::int64_t(cv.outW) * cv.outH);
      float* dst = col + (r - r0) * patch;
      for (int ky = 0; ky < cv.kH; ky++) {
        const int iy = oy * cv.strideH + ky * cv.dilH - cv.padTop;
        for (int kx = 0; kx < cv.kW; kx++) {
          const int ix = ox * cv.strideW + kx * cv.dilW - cv.padLeft;
          float* d = dst + (std::int64_t(ky) * cv.kW + kx) * cv.inC;
          if (iy < 0 || iy >= cv.inH || ix < 0 || ix >= cv.inW) std::memset(d, 0, sizeof(float) * cv.inC);
          else std::memcpy(d, x + ((b * cv.inH + iy) * cv.inW + ix) * cv.inC, sizeof(float) * cv.inC);
        }
      }
    }
  });
}

// dx[b, iy, ix, ci] += col[r - r0, (ky, kx, ci)] for the output positions r0 <= r < r1 whose taps
// read that pixel. Split over channel slices, so no two threads add into the same element.
void col2im_add(const Conv& cv, const float* col, std::int64_t r0, std::int64_t r1, float* dx) {
  const std::int64_t patch = cv.patch();
  const int parts = std::max(1, std::min(pool->size(), cv.inC / 8));
  const int per = (cv.inC + parts - 1) / parts;
  pool->run(parts, [&](int p) {
    const int c0 = p * per, c1 = std::min(cv.inC, c0 + per);
    for (std::int64_t r = r0; r < r1; r++) {
      const int ox = static_cast<int>(r % cv.outW), oy = static_cast<int>((r / cv.outW) % cv.outH);
      const std::int64_t b = r / (std::int64_t(cv.outW) * cv.outH);
      const float* src = col + (r - r0) * patch;
      for (int ky = 0; ky < cv.kH; ky++) {
        const int iy = oy * cv.strideH + ky * cv.dilH - cv.padTop;
        if (iy < 0 || iy >= cv.inH) continue;
        for (int kx = 0; kx < cv.kW; kx++) {
          const int ix = ox * cv.strideW + kx * cv.dilW - cv.padLeft;
          if (ix < 0 || ix >= cv.inW) continue;
          const float* s = src + (std::int64_t(ky) * cv.kW + kx) * cv.inC;
          float* d = dx + ((b * cv.inH + iy) * cv.inW + ix) * cv.inC;
          for (int ci = c0; ci < c1; ci++) d[ci] += s[ci];
        }
      }
    }
  });
}

// A 1×1, stride-1, unpadded conv reads the input as it is: no im2col needed.
bool isPointwise(const Conv& cv) {
  return cv.kH == 1 && cv.kW == 1 && cv.strideH == 1 && cv.strideW == 1 && cv.padTop == 0 && cv.padLeft == 0 && cv.outH == cv.inH &&
         cv.outW == cv.inW;
}

// The im2col buffer holds at most this many floats (default 2^24 = 64 MB); larger convolutions run in
// row chunks. setScratchLimit changes it (tests use a tiny one to exercise the chunking).
std::int64_t scratchFloats = std::int64_t(1) << 24;

std::int64_t chunkRows(const Conv& cv) { return std::max<std::int64_t>(1, std::min(cv.rows(), scratchFloats / cv.patch())); }

float* scratch(std::int64_t n) {
  static std::vector<float> buf;
  if (static_cast<std::int64_t>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

// ---------------------------------------------------------------------------------------------
// Direct convolution for stride 1, dilation 1 and up to 64 output channels (the
// tokenizer's 3×3 convs). im2col writes kH·kW copies of the input (4.7 MB for a 3×3 conv of
// 8×32×32×16), which cost about as much as the GEMM itself; here the input is zero-padded once and
// each tile of output pixels × channels stays in registers while the filter taps and input
// channels are summed into it (an implicit GEMM: A's rows are read from the padded input in place).

// One vector of kLanes floats: a zmm register with AVX-512, a ymm with AVX2 (GCC splits wider
// generic vectors into slow code there).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kMaxVectors = 4;  // 64 channels
#else
constexpr int kLanes = 8;
constexpr int kMaxVectors = 8;
#endif
typedef float vec __attribute__((vector_size(kLanes * sizeof(float))));

// Pixels per register tile for NV vectors of channels: R·NV accumulators + NV filter vectors + a
// broadcast within the ISA's vector registers (32 with AVX-512, 16 with AVX2).
template <int NV>
constexpr int tile_pixels() {
#if defined(__AVX512F__)
  return NV <= 2 ? 8 : NV == 3 ? 8 : 6;
#else
  return NV <= 2 ? 4 : NV <= 4 ? 2 : 1;
#endif
}
constexpr int kFilterTile = kLanes == 16 ? 8 : 4;  // input channels per filter-gradient tile

inline vec loadv(const float* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storev(float* p, vec v) { std::memcpy(p, &v, sizeof v); }

// f(std::integral_constant<int, nv>) for nv = 1 .. kMaxVectors (the number of vectors of channels).
template <typename F>
void dispatch_vectors(int nv, F f) {
  switch (nv) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
#if !defined(__AVX512F__)
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
#endif
    default: break;
  }
}

struct Direct {
  int batch, outH, outW, inC, outC, kH, kW, padH, padW;  // padded input: [batch, padH, padW, inC]
  int wStride;                                           // the filter's channel stride: outC rounded up to kLanes
  const float* bias = nullptr;                           // forward only: [wStride], the accumulators' start
};

// y[R pixels from ox0 of row (b, oy), NV·kLanes channels] = Σ_taps Σ_ci xpad[b, oy + ky, ox + kx, ci] · w[ky, kx, ci, :].
template <int NV, int R>
void direct_tile(const Direct& d, const float* __restrict xpad, const float* __restrict w, float* __restrict y, int b, int oy, int ox0) {
  vec acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = d.bias != nullptr ? loadv(d.bias + kLanes * j) : vec{};
  const int ci = d.inC;
  for (int ky = 0; ky < d.kH; ky++) {
    for (int kx = 0; kx < d.kW; kx++) {
      const float* __restrict a = xpad + ((std::int64_t(b) * d.padH + oy + ky) * d.padW + ox0 + kx) * ci;
      const float* __restrict wt = w + std::int64_t(ky * d.kW + kx) * ci * d.wStride;
      for (int c = 0; c < ci; c++) {
        vec bv[NV];
        for (int j = 0; j < NV; j++) bv[j] = loadv(wt + std::int64_t(c) * d.wStride + kLanes * j);
        for (int i = 0; i < R; i++) {
          // A scalar times a vector broadcasts the scalar from memory inside the FMA ({1to16}).
          // `vec{} + x` did not: IEEE makes 0 + x an add, then a broadcast on the FMA's port.
          const float av = a[std::int64_t(i) * ci + c];
          for (int j = 0; j < NV; j++) acc[i][j] += av * bv[j];
        }
      }
    }
  }
  float* out = y + ((std::int64_t(b) * d.outH + oy) * d.outW + ox0) * d.outC;
  if (d.outC == NV * kLanes) {
    for (int i = 0; i < R; i++)
      for (int j = 0; j < NV; j++) storev(out + std::int64_t(i) * d.outC + kLanes * j, acc[i][j]);
  } else {
    // outC not a multiple of kLanes: the filter was padded with zero channels; store the real ones.
    for (int i = 0; i < R; i++) {
      float row[NV * kLanes];
      for (int j = 0; j < NV; j++) storev(row + kLanes * j, acc[i][j]);
      std::memcpy(out + std::int64_t(i) * d.outC, row, sizeof(float) * d.outC);
    }
  }
}

// The last `rem` (< R) pixels of a row as one tile of `rem` pixels: pixel by pixel, each tile is a
// chain of dependent FMAs (latency-bound, 4-8× slower), which made a 6-pixel-wide row (PatchGAN's
// last conv) cost as much as a 48-pixel one.
template <int NV, int R>
void direct_tail(const Direct& d, const float* xpad, const float* w, float* y, int b, int oy, int ox, int rem) {
  if constexpr (R >= 1) {
    if (rem == R) direct_tile<NV, R>(d, xpad, w, y, b, oy, ox);
    else direct_tail<NV, R - 1>(d, xpad, w, y, b, oy, ox, rem);
  }
}

template <int NV>
void direct_rows(const Direct& d, const float* xpad, const float* w, float* y) {
  pool->run(d.batch * d.outH, [&](int row) {
    const int b = row / d.outH, oy = row % d.outH;
    int ox = 0;
    constexpr int R = tile_pixels<NV>();
    for (; ox + R <= d.outW; ox += R) direct_tile<NV, R>(d, xpad, w, y, b, oy, ox);
    if (ox < d.outW) direct_tail<NV, R - 1>(d, xpad, w, y, b, oy, ox, d.outW - ox);
  });
}

// A second scratch buffer: the padded input lives while the im2col buffer is not used.
float* pad_scratch(std::int64_t n) {
  static std::vector<float> buf;
  if (static_cast<std::int64_t>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

// xpad[b, top + iy, left + ix, :] = x[b, iy, ix, :], zero elsewhere (rows and columns outside [0, padH) × [0, padW) dropped).
float* pad_input(const float* x, int batch, int inH, int inW, int c, int top, int left, int padH, int padW) {
  float* xpad = pad_scratch(std::int64_t(batch) * padH * padW * c);
  pool->run(batch * padH, [&](int row) {
    const int b = row / padH, py = row % padH, iy = py - top;
    float* dst = xpad + (std::int64_t(b) * padH + py) * padW * c;
    std::memset(dst, 0, sizeof(float) * std::int64_t(padW) * c);
    if (iy < 0 || iy >= inH) return;
    const int x0 = std::max(0, -left), x1 = std::min(inW, padW - left);
    if (x0 < x1) std::memcpy(dst + std::int64_t(left + x0) * c, x + ((std::int64_t(b) * inH + iy) * inW + x0) * c, sizeof(float) * (x1 - x0) * c);
  });
  return xpad;
}

// One channel leaves 15 of 16 lanes idle: im2col + GEMM is faster there (a 1-channel 4×4 conv 64
// against 89 µs); from 3 channels the direct kernel wins (3-channel 3×3 forward 304 against 376 µs).
bool direct_channels(int c) { return c >= 3 && c <= 64; }

// y = conv(x, w) for a stride-1, dilation-1 geometry: the input padded to (outH + kH − 1) × (outW + kW − 1).
// w is [kH, kW, inC, wStride] with wStride = outC rounded up to kLanes (zero channels past outC).
// bias (optional) is [wStride] like a filter row.
void direct_conv_padded(int batch, int inH, int inW, int inC, int outH, int outW, int outC, int kH, int kW, int padTop, int padLeft,
                        const float* x, const float* w, float* y, const float* bias = nullptr) {
  const int wStride = (outC + kLanes - 1) / kLanes * kLanes;
  const Direct d{batch, outH, outW, inC, outC, kH, kW, outH + kH - 1, outW + kW - 1, wStride, bias};
  const float* xpad = pad_input(x, batch, inH, inW, inC, padTop, padLeft, d.padH, d.padW);
  dispatch_vectors(wStride / kLanes, [&](auto nv) { direct_rows<decltype(nv)::value>(d, xpad, w, y); });
}

// w[ky, kx, ci, co] → [kH·kW·inC, wStride] with zero columns past outC (copied only when outC % kLanes != 0).
const float* widen_filter(const float* w, std::int64_t rows, int outC, std::vector<float>& buf) {
  const int wStride = (outC + kLanes - 1) / kLanes * kLanes;
  if (wStride == outC) return w;
  buf.assign(std::size_t(rows) * wStride, 0.0f);
  for (std::int64_t r = 0; r < rows; r++) std::memcpy(buf.data() + r * wStride, w + r * outC, sizeof(float) * outC);
  return buf.data();
}

// y = conv(x, w) (+ bias [outC] when given: it starts the accumulators, so no second pass over y).
void direct_conv(int batch, int inH, int inW, int inC, int outH, int outW, int outC, int kH, int kW, int padTop, int padLeft,
                 const float* x, const float* w, float* y, const float* bias = nullptr) {
  std::vector<float> wide, wideBias;
  const float* wp = widen_filter(w, std::int64_t(kH) * kW * inC, outC, wide);
  const float* bp = bias != nullptr ? widen_filter(bias, 1, outC, wideBias) : nullptr;
  direct_conv_padded(batch, inH, inW, inC, outH, outW, outC, kH, kW, padTop, padLeft, x, wp, y, bp);
}

// y[r, :] += bias for `rows` rows of `cols` (the bias of the GEMM-based convolutions, on rows still in cache).
void add_bias_rows(float* y, std::int64_t rows, int cols, const float* bias) {
  if (bias == nullptr) return;
  for (std::int64_t r = 0; r < rows; r++) {
    float* __restrict row = y + r * cols;
    for (int c = 0; c < cols; c++) row[c] += bias[c];
  }
}

bool direct_forward_fits(const Conv& cv) {
  return cv.strideH == 1 && cv.strideW == 1 && cv.dilH == 1 && cv.dilW == 1 && direct_channels(cv.outC) && cv.padTop >= 0 && cv.padLeft >= 0;
}

// The input gradient of a stride-1 conv is the conv of dy with the filter flipped in space and
// transposed in channels, padded by kH − 1 − padTop (kW − 1 − padLeft): each dx pixel collects
// dy at the output positions whose taps read it.
bool direct_backprop_input_fits(const Conv& cv) {
  return cv.strideH == 1 && cv.strideW == 1 && cv.dilH == 1 && cv.dilW == 1 && direct_channels(cv.inC) && cv.padTop >= 0 &&
         cv.padLeft >= 0 && cv.padTop <= cv.kH - 1 && cv.padLeft <= cv.kW - 1 && cv.outH + cv.kH - 1 - cv.padTop <= cv.inH + cv.kH - 1 &&
         cv.outW + cv.kW - 1 - cv.padLeft <= cv.inW + cv.kW - 1;
}

void direct_backprop_input(const Conv& cv, const float* dy, const float* w, float* dx) {
  // wf[ky, kx, co, ci] = w[kH − 1 − ky, kW − 1 − kx, ci, co]
  std::vector<float> wf(std::size_t(cv.kH) * cv.kW * cv.outC * cv.inC);
  for (int ky = 0; ky < cv.kH; ky++)
    for (int kx = 0; kx < cv.kW; kx++)
      for (int ci = 0; ci < cv.inC; ci++)
        for (int co = 0; co < cv.outC; co++)
          wf[((std::size_t(ky) * cv.kW + kx) * cv.outC + co) * cv.inC + ci] =
              w[((std::size_t(cv.kH - 1 - ky) * cv.kW + (cv.kW - 1 - kx)) * cv.inC + ci) * cv.outC + co];
  direct_conv(cv.batch, cv.outH, cv.outW, cv.outC, cv.inH, cv.inW, cv.inC, cv.kH, cv.kW, cv.kH - 1 - cv.padTop, cv.kW - 1 - cv.padLeft, dy,
              wf.data(), dx);
}

// The filter gradient of a stride-1 conv, directly: dw[ky, kx, ci, :] = Σ_pixels xpad[b, oy + ky,
// ox + kx, ci] · dy[b, oy, ox, :]. A tile of R input channels × outC stays in registers over every
// pixel; the pool's tasks are (tap, channel tile) pairs, so each writes its own part of dw.
template <int NV, int R>
void direct_filter_tile(const Direct& d, const float* __restrict xpad, const float* __restrict dy, float* __restrict dw, int ky, int kx, int c0) {
  vec acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = vec{};
  const int ci = d.inC;
  for (int b = 0; b < d.batch; b++) {
    for (int oy = 0; oy < d.outH; oy++) {
      const float* __restrict xr = xpad + ((std::int64_t(b) * d.padH + oy + ky) * d.padW + kx) * ci + c0;
      const float* __restrict dr = dy + (std::int64_t(b) * d.outH + oy) * d.outW * (NV * kLanes);
      for (int ox = 0; ox < d.outW; ox++) {
        vec bv[NV];
        for (int j = 0; j < NV; j++) bv[j] = loadv(dr + std::int64_t(ox) * (NV * kLanes) + kLanes * j);
        for (int i = 0; i < R; i++) {
          const float av = xr[std::int64_t(ox) * ci + i];  // broadcast in the FMA (see direct_tile)
          for (int j = 0; j < NV; j++) acc[i][j] += av * bv[j];
        }
      }
    }
  }
  float* out = dw + (std::int64_t(ky * d.kW + kx) * ci + c0) * (NV * kLanes);
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) storev(out + std::int64_t(i) * (NV * kLanes) + kLanes * j, acc[i][j]);
}

template <int NV>
void direct_filter(const Direct& d, const float* xpad, const float* dy, float* dw) {
  const int tiles = (d.inC + kFilterTile - 1) / kFilterTile;
  pool->run(d.kH * d.kW * tiles, [&](int task) {
    const int tap = task / tiles, c0 = (task % tiles) * kFilterTile;
    const int ky = tap / d.kW, kx = tap % d.kW;
    if (c0 + kFilterTile <= d.inC) direct_filter_tile<NV, kFilterTile>(d, xpad, dy, dw, ky, kx, c0);
    else
      for (int c = c0; c < d.inC; c++) direct_filter_tile<NV, 1>(d, xpad, dy, dw, ky, kx, c);
  });
}

bool direct_filter_fits(const Conv& cv) {
  return cv.strideH == 1 && cv.strideW == 1 && cv.dilH == 1 && cv.dilW == 1 && cv.outC % kLanes == 0 && cv.outC >= kLanes && cv.outC <= kLanes * kMaxVectors &&
         cv.padTop >= 0 && cv.padLeft >= 0;
}

void direct_backprop_filter(const Conv& cv, const float* x, const float* dy, float* dw) {
  const Direct d{cv.batch, cv.outH, cv.outW, cv.inC, cv.outC, cv.kH, cv.kW, cv.outH + cv.kH - 1, cv.outW + cv.kW - 1, cv.outC};
  const float* xpad = pad_input(x, cv.batch, cv.inH, cv.inW, cv.inC, cv.padTop, cv.padLeft, d.padH, d.padW);
  dispatch_vectors(cv.outC / kLanes, [&](auto nv) { direct_filter<decltype(nv)::value>(d, xpad, dy, dw); });
}

// y = conv(x, w) (+ bias [outC] when given): pointwise as one GEMM, stride 1 direct, else
// y[rows, outC] = col[rows, patch] * w[patch, outC] chunk by chunk.
void conv_forward(const Conv& cv, const float* x, const float* w, float* y, const float* bias = nullptr) {
  const int patch = static_cast<int>(cv.patch());
  if (isPointwise(cv)) {
    batched_gemm(1, false, false, static_cast<int>(cv.rows()), cv.outC, patch, x, 0, w, 0, y);
    add_bias_rows(y, cv.rows(), cv.outC, bias);
    return;
  }
  if (direct_forward_fits(cv)) {
    direct_conv(cv.batch, cv.inH, cv.inW, cv.inC, cv.outH, cv.outW, cv.outC, cv.kH, cv.kW, cv.padTop, cv.padLeft, x, w, y, bias);
    return;
  }
  const std::int64_t chunk = chunkRows(cv);
  float* col = scratch(chunk * patch);
  for (std::int64_t r0 = 0; r0 < cv.rows(); r0 += chunk) {
    const std::int64_t r1 = std::min(cv.rows(), r0 + chunk);
    im2col(cv, x, r0, r1, col);
    batched_gemm(1, false, false, static_cast<int>(r1 - r0), cv.outC, patch, col, 0, w, 0, y + r0 * cv.outC);
    add_bias_rows(y + r0 * cv.outC, r1 - r0, cv.outC, bias);
  }
}

// dx = col2im(dy[rows, outC] * wᵀ), chunk by chunk.
void conv_backprop_input(const Conv& cv, const float* dy, const float* w, float* dx) {
  const int patch = static_cast<int>(cv.patch());
  if (isPointwise(cv)) {
    batched_gemm(1, false, true, static_cast<int>(cv.rows()), cv.inC, cv.outC, dy, 0, w, 0, dx);
    return;
  }
  if (direct_backprop_input_fits(cv)) {
    direct_backprop_input(cv, dy, w, dx);
    return;
  }
  std::memset(dx, 0, sizeof(float) * std::int64_t(cv.batch) * cv.inH * cv.inW * cv.inC);
  const std::int64_t chunk = chunkRows(cv);
  float* col = scratch(chunk * patch);
  for (std::int64_t r0 = 0; r0 < cv.rows(); r0 += chunk) {
    const std::int64_t r1 = std::min(cv.rows(), r0 + chunk);
    batched_gemm(1, false, true, static_cast<int>(r1 - r0), patch, cv.outC, dy + r0 * cv.outC, 0, w, 0, col);
    col2im_add(cv, col, r0, r1, dx);
  }
}

// dw[patch, outC] = colᵀ * dy, summed over chunks.
void conv_backprop_filter(const Conv& cv, const float* x, const float* dy, float* dw) {
  const int patch = static_cast<int>(cv.patch());
  if (isPointwise(cv)) {
    batched_gemm(1, true, false, patch, cv.outC, static_cast<int>(cv.rows()), x, 0, dy, 0, dw);
    return;
  }
  if (direct_filter_fits(cv)) {
    direct_backprop_filter(cv, x, dy, dw);
    return;
  }
  const std::int64_t chunk = chunkRows(cv);
  float* col = scratch(chunk * patch);
  for (std::int64_t r0 = 0; r0 < cv.rows(); r0 += chunk) {
    const std::int64_t r1 = std::min(cv.rows(), r0 + chunk);
    im2col(cv, x, r0, r1, col);
    batched_gemm(1, true, false, patch, cv.outC, static_cast<int>(r1 - r0), col, 0, dy + r0 * cv.outC, 0, dw, r0 > 0);
  }
}

// ---------------------------------------------------------------------------------------------
// N-API glue.

#define NAPI_CALL(env, call)                                  \
  do {                                                        \
    if ((call) != napi_ok) {                                  \
      napi_throw_error((env), nullptr, "N-API call failed: " #call); \
      return nullptr;                                         \
    }                                                         \
  } while (0)

// Reads exactly `n` arguments into argv; throws a TypeError naming `name` otherwise.
bool get_args(napi_env env, napi_callback_info info, std::size_t n, napi_value* argv, const char* name) {
  std::size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) {
    napi_throw_error(env, nullptr, "N-API call failed: napi_get_cb_info");
    return false;
  }
  if (argc != n) {
    const std::string msg = std::string("@ettjs/backend native: ") + name + " takes " + std::to_string(n) + " arguments";
    napi_throw_type_error(env, nullptr, msg.c_str());
    return false;
  }
  return true;
}

bool get_heap(napi_env env, napi_value v, float** data, std::size_t* length) {
  napi_typedarray_type type;
  void* ptr = nullptr;
  napi_value buffer;
  std::size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, &buffer, &offset) != napi_ok || type != napi_float32_array) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: the heap argument must be a Float32Array");
    return false;
  }
  *data = static_cast<float*>(ptr);
  return true;
}

bool get_ints(napi_env env, napi_value* argv, std::size_t from, std::size_t count, std::int64_t* out) {
  for (std::size_t i = 0; i < count; i++) {
    if (napi_get_value_int64(env, argv[from + i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "@ettjs/backend native: expected integer arguments");
      return false;
    }
  }
  return true;
}

bool in_heap(napi_env env, std::size_t length, std::int64_t offset, std::int64_t count) {
  if (offset < 0 || count < 0 || static_cast<std::uint64_t>(offset + count) > length) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: an operand lies outside the heap");
    return false;
  }
  return true;
}

// gemm(heap, aOffset, bOffset, cOffset, batch, m, n, k, transposeA, transposeB, aStride, bStride)
napi_value Gemm(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  if (!get_args(env, info, 12, argv, "gemm")) return nullptr;
  float* heap;
  std::size_t length;
  std::int64_t v[11];
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 11, v)) return nullptr;
  const std::int64_t aOff = v[0], bOff = v[1], cOff = v[2], batch = v[3], m = v[4], n = v[5], k = v[6], sa = v[9], sb = v[10];
  const bool ta = v[7] != 0, tb = v[8] != 0;
  if (batch < 1 || m < 1 || n < 1 || k < 0) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: gemm needs batch, m, n >= 1 and k >= 0");
    return nullptr;
  }
  if (!in_heap(env, length, aOff, sa * (batch - 1) + m * k) || !in_heap(env, length, bOff, sb * (batch - 1) + k * n) ||
      !in_heap(env, length, cOff, batch * m * n))
    return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  batched_gemm(static_cast<int>(batch), ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), heap + aOff, sa,
               heap + bOff, sb, heap + cOff);
  return nullptr;
}

// conv2d(mode, heap, xOffset, wOffset, yOffset, ...15 geometry ints, biasOffset); mode 0 forward
// (x, w -> y, plus the bias [outC] unless its offset is -1), 1 input gradient (dy, w -> dx), 2 filter
// gradient (x, dy -> dw); those two take no bias (-1).
napi_value Conv2d(napi_env env, napi_callback_info info) {
  napi_value argv[21];
  if (!get_args(env, info, 21, argv, "conv2d")) return nullptr;
  std::int64_t mode, bias;
  float* heap;
  std::size_t length;
  std::int64_t o[3], g[15];
  if (!get_ints(env, argv, 0, 1, &mode) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 3, o) ||
      !get_ints(env, argv, 5, 15, g) || !get_ints(env, argv, 20, 1, &bias))
    return nullptr;
  Conv cv{};
  int* fields[] = {&cv.batch, &cv.inH, &cv.inW, &cv.inC, &cv.outH, &cv.outW, &cv.outC, &cv.kH,
                   &cv.kW,    &cv.strideH, &cv.strideW, &cv.dilH, &cv.dilW, &cv.padTop, &cv.padLeft};
  for (int i = 0; i < 15; i++) {
    if (g[i] < 0 || g[i] > (1 << 30) || (i < 13 && g[i] == 0)) {
      napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid conv2d geometry");
      return nullptr;
    }
    *fields[i] = static_cast<int>(g[i]);
  }
  const std::int64_t xs = std::int64_t(cv.batch) * cv.inH * cv.inW * cv.inC, ys = cv.rows() * cv.outC, ws = cv.patch() * cv.outC;
  const std::int64_t sizes[3][3] = {{xs, ws, ys}, {ys, ws, xs}, {xs, ys, ws}};
  if (mode < 0 || mode > 2) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: conv2d mode must be 0, 1 or 2");
    return nullptr;
  }
  for (int i = 0; i < 3; i++)
    if (!in_heap(env, length, o[i], sizes[mode][i])) return nullptr;
  if (bias != -1 && (mode != 0 || !in_heap(env, length, bias, cv.outC))) {
    if (mode != 0) napi_throw_range_error(env, nullptr, "@ettjs/backend native: conv2d takes a bias in mode 0 only");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (mode == 0) conv_forward(cv, heap + o[0], heap + o[1], heap + o[2], bias == -1 ? nullptr : heap + bias);
  else if (mode == 1) conv_backprop_input(cv, heap + o[0], heap + o[1], heap + o[2]);
  else conv_backprop_filter(cv, heap + o[0], heap + o[1], heap + o[2]);
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// GroupNorm + per-channel affine (+ SiLU) on NHWC data, forward and backward, one sample per task.
// Statistics in two passes (per-channel sums first, then per group), as the JS kernel in
// src/fused/group-norm.ts, which is the reference the tests hold both to. The per-pixel loops run in
// float over the channels (so they vectorize): sums are taken in float over blocks of kBlock pixels
// and each block's sums added in double, the mean and 1/std kept in double until they are used.

constexpr int kBlock = 64;

// exp(x) in float without a branch, so loops over it vectorize: Cephes' expf (range reduction by
// ln 2 and a degree-6 polynomial; relative error about 2e-7), on x clamped to [-87, 88] (below,
// exp is 0 to float precision at the uses here: sigmoid; above, float overflows).
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float u) { return 1.0f / (1.0f + exp_approx(-u)); }

struct GroupNormArgs {
  const float *x, *gamma, *beta, *dy;
  float *out, *dgamma, *dbeta;
  int batch, hw, c, groups;
  bool silu;
  double eps;
};

// acc[ch] += Σ_p f(p, ch) over the sample's pixels, summed in float per block of pixels.
template <typename F>
void channel_sums(int hw, int c, double* __restrict acc, float* __restrict block, F f) {
  for (int p0 = 0; p0 < hw; p0 += kBlock) {
    std::fill(block, block + c, 0.0f);
    const int p1 = std::min(hw, p0 + kBlock);
    for (int p = p0; p < p1; p++) f(p, block);
    for (int ch = 0; ch < c; ch++) acc[ch] += block[ch];
  }
}

// Per-channel mean and 1/sqrt(var + eps) of the channel's group, for sample s.
void gn_stats(const GroupNormArgs& a, int s, double* mean, double* rstd, double* acc, float* block) {
  const int c = a.c, cg = c / a.groups;
  const float* __restrict x = a.x + std::int64_t(s) * a.hw * c;
  const double n = double(a.hw) * cg;
  std::fill(acc, acc + c, 0.0);
  channel_sums(a.hw, c, acc, block, [&](int p, float* __restrict b) {
    const float* __restrict row = x + std::int64_t(p) * c;
    for (int ch = 0; ch < c; ch++) b[ch] += row[ch];
  });
  for (int g = 0; g < a.groups; g++) {
    double sum = 0;
    for (int k = 0; k < cg; k++) sum += acc[g * cg + k];
    for (int k = 0; k < cg; k++) mean[g * cg + k] = sum / n;
  }
  std::vector<float> meanf(mean, mean + c);
  const float* __restrict m = meanf.data();
  std::fill(acc, acc + c, 0.0);
  channel_sums(a.hw, c, acc, block, [&](int p, float* __restrict b) {
    const float* __restrict row = x + std::int64_t(p) * c;
    for (int ch = 0; ch < c; ch++) {
      const float d = row[ch] - m[ch];
      b[ch] += d * d;
    }
  });
  for (int g = 0; g < a.groups; g++) {
    double sq = 0;
    for (int k = 0; k < cg; k++) sq += acc[g * cg + k];
    for (int k = 0; k < cg; k++) rstd[g * cg + k] = 1.0 / std::sqrt(sq / n + a.eps);
  }
}

void group_norm_forward(const GroupNormArgs& a) {
  const int c = a.c;
  pool->run(a.batch, [&](int s) {
    std::vector<double> mean(c), rstd(c), acc(c);
    std::vector<float> scale(c), shift(c), block(c);
    gn_stats(a, s, mean.data(), rstd.data(), acc.data(), block.data());
    for (int ch = 0; ch < c; ch++) {
      const double sc = rstd[ch] * a.gamma[ch];
      scale[ch] = float(sc);
      shift[ch] = float(a.beta[ch] - mean[ch] * sc);
    }
    const float* __restrict sc = scale.data();
    const float* __restrict sh = shift.data();
    const std::int64_t base = std::int64_t(s) * a.hw * c;
    for (int p = 0; p < a.hw; p++) {
      const float* __restrict x = a.x + base + std::int64_t(p) * c;
      float* __restrict y = a.out + base + std::int64_t(p) * c;
      if (a.silu) {
        for (int ch = 0; ch < c; ch++) {
          const float u = x[ch] * sc[ch] + sh[ch];
          y[ch] = u * sigmoid(u);
        }
      } else {
        for (int ch = 0; ch < c; ch++) y[ch] = x[ch] * sc[ch] + sh[ch];
      }
    }
  });
}

// One pixel of the backward's first pass: du = dy · act'(u), dxhat = du · gamma (into out), and the
// block's channel sums of du, du·xhat, dxhat and dxhat·xhat.
template <bool Silu>
void gn_backward_pixel(int c, const float* __restrict x, const float* __restrict dy, float* __restrict out, const float* __restrict m,
                       const float* __restrict r, const float* __restrict gamma, const float* __restrict beta, float* __restrict b_db,
                       float* __restrict b_dg, float* __restrict b_s1, float* __restrict b_s2) {
  for (int ch = 0; ch < c; ch++) {
    const float xhat = (x[ch] - m[ch]) * r[ch];
    float d = dy[ch];
    if (Silu) {
      const float u = xhat * gamma[ch] + beta[ch];
      const float sg = sigmoid(u);
      d *= sg * (1.0f + u * (1.0f - sg));
    }
    b_db[ch] += d;
    b_dg[ch] += d * xhat;
    const float dxhat = d * gamma[ch];
    out[ch] = dxhat;
    b_s1[ch] += dxhat;
    b_s2[ch] += dxhat * xhat;
  }
}

void group_norm_backward(const GroupNormArgs& a) {
  const int c = a.c, cg = c / a.groups;
  const double n = double(a.hw) * cg;
  std::vector<double> dg(std::size_t(a.batch) * c), db(std::size_t(a.batch) * c);
  pool->run(a.batch, [&](int s) {
    std::vector<double> mean(c), rstd(c), acc(c), s1(c, 0.0), s2(c, 0.0);
    std::vector<float> block(c), bdb(c), bdg(c), bs1(c), bs2(c), meanf(c), rstdf(c), k0(c), k1(c), k2(c);
    double* dgs = dg.data() + std::size_t(s) * c;
    double* dbs = db.data() + std::size_t(s) * c;
    std::fill(dgs, dgs + c, 0.0);
    std::fill(dbs, dbs + c, 0.0);
    gn_stats(a, s, mean.data(), rstd.data(), acc.data(), block.data());
    for (int ch = 0; ch < c; ch++) {
      meanf[ch] = float(mean[ch]);
      rstdf[ch] = float(rstd[ch]);
    }
    const float* __restrict m = meanf.data();
    const float* __restrict r = rstdf.data();
    const float* __restrict gamma = a.gamma;
    const float* __restrict beta = a.beta;
    const std::int64_t base = std::int64_t(s) * a.hw * c;
    // First pass: du = dy · act'(u), dxhat = du · gamma (left in dx), channel sums (float per block).
    for (int p0 = 0; p0 < a.hw; p0 += kBlock) {
      const int p1 = std::min(a.hw, p0 + kBlock);
      float* __restrict b_db = bdb.data();
      float* __restrict b_dg = bdg.data();
      float* __restrict b_s1 = bs1.data();
      float* __restrict b_s2 = bs2.data();
      std::fill(b_db, b_db + c, 0.0f);
      std::fill(b_dg, b_dg + c, 0.0f);
      std::fill(b_s1, b_s1 + c, 0.0f);
      std::fill(b_s2, b_s2 + c, 0.0f);
      for (int p = p0; p < p1; p++) {
        const std::int64_t o = base + std::int64_t(p) * c;
        if (a.silu) gn_backward_pixel<true>(c, a.x + o, a.dy + o, a.out + o, m, r, gamma, beta, b_db, b_dg, b_s1, b_s2);
        else gn_backward_pixel<false>(c, a.x + o, a.dy + o, a.out + o, m, r, gamma, beta, b_db, b_dg, b_s1, b_s2);
      }
      for (int ch = 0; ch < c; ch++) {
        dbs[ch] += b_db[ch];
        dgs[ch] += b_dg[ch];
        s1[ch] += b_s1[ch];
        s2[ch] += b_s2[ch];
      }
    }
    // dx = rstd·(dxhat − mean_g(dxhat) − xhat·mean_g(dxhat·xhat)) = k0·dxhat + k1·x + k2.
    for (int g = 0; g < a.groups; g++) {
      double m1 = 0, m2 = 0;
      for (int k = 0; k < cg; k++) {
        m1 += s1[g * cg + k];
        m2 += s2[g * cg + k];
      }
      m1 /= n;
      m2 /= n;
      for (int k = 0; k < cg; k++) {
        const int ch = g * cg + k;
        const double rs = rstd[ch];
        k0[ch] = float(rs);
        k1[ch] = float(-rs * rs * m2);
        k2[ch] = float(-rs * m1 + mean[ch] * rs * rs * m2);
      }
    }
    const float* __restrict c0 = k0.data();
    const float* __restrict c1 = k1.data();
    const float* __restrict c2 = k2.data();
    for (int p = 0; p < a.hw; p++) {
      const std::int64_t o = base + std::int64_t(p) * c;
      const float* __restrict x = a.x + o;
      float* __restrict out = a.out + o;
      for (int ch = 0; ch < c; ch++) out[ch] = c0[ch] * out[ch] + c1[ch] * x[ch] + c2[ch];
    }
  });
  for (int ch = 0; ch < c; ch++) {
    double g = 0, b = 0;
    for (int s = 0; s < a.batch; s++) {
      g += dg[std::size_t(s) * c + ch];
      b += db[std::size_t(s) * c + ch];
    }
    a.dgamma[ch] = float(g);
    a.dbeta[ch] = float(b);
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise float32 arithmetic and sums: tfjs-backend-wasm runs these in 128-bit SIMD on one
// thread; here they vectorize to the build's ISA and split over the pool when large.

// Below this many elements an elementwise loop runs on the calling thread: waking the pool costs more.
constexpr std::int64_t kParallelElements = std::int64_t(1) << 15;

// The elementwise span functions are never inlined. Inlined into an entry point's calling-thread
// path, GCC dropped their __restrict and compiled the loop scalar (vaddss: an Add of 32 767 floats
// took 18 µs there against 3 µs for 32 768 on the pool), while the pool's copy, called through
// std::function, kept its vectors.
#define ETT_SPAN __attribute__((noinline))

// fn(lo, hi) over [0, n), split into pool tasks of whole multiples of `unit` when n is large.
template <typename F>
void parallel_range(std::int64_t n, std::int64_t unit, F fn) {
  const int threads = pool->size();
  if (threads == 1 || n < kParallelElements) {
    fn(std::int64_t(0), n);
    return;
  }
  const std::int64_t units = (n + unit - 1) / unit;
  const int tasks = static_cast<int>(std::min<std::int64_t>(units, threads * 4));
  const std::int64_t per = (units + tasks - 1) / tasks * unit;
  pool->run(tasks, [&](int t) {
    const std::int64_t lo = t * per, hi = std::min(n, lo + per);
    if (lo < hi) fn(lo, hi);
  });
}

enum BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

// f(std::integral_constant<int, op>{}) for a validated op code 0..3 (a BinaryOp).
template <typename F>
void dispatch_op(std::int64_t op, F f) {
  switch (op) {
    case kAdd: f(std::integral_constant<int, kAdd>{}); break;
    case kSub: f(std::integral_constant<int, kSub>{}); break;
    case kMul: f(std::integral_constant<int, kMul>{}); break;
    default: f(std::integral_constant<int, kDiv>{}); break;
  }
}

template <int Op>
inline float apply(float a, float b) {
  if (Op == kAdd) return a + b;
  if (Op == kSub) return a - b;
  if (Op == kMul) return a * b;
  return a / b;
}

// out[i] = a[i] op b[i] over [lo, hi), with a or b of stride 0 (a scalar) when its flag says so.
template <int Op, bool ScalarA, bool ScalarB>
ETT_SPAN void binary_span(const float* __restrict a, const float* __restrict b, float* __restrict out, std::int64_t lo, std::int64_t hi) {
  const float sa = ScalarA ? a[0] : 0.0f, sb = ScalarB ? b[0] : 0.0f;
  for (std::int64_t i = lo; i < hi; i++) out[i] = apply<Op>(ScalarA ? sa : a[i], ScalarB ? sb : b[i]);
}

// out[n] = big[n] op small[n % m] (or small op big when smallFirst): tfjs broadcasting where one
// operand's shape is the other's trailing dimensions (m = its size; m = n is elementwise, m = 1 a scalar).
template <int Op>
void binary(const float* big, const float* small, float* out, std::int64_t n, std::int64_t m, bool smallFirst) {
  if (m == n) {
    parallel_range(n, 16, [&](std::int64_t lo, std::int64_t hi) {
      smallFirst ? binary_span<Op, false, false>(small, big, out, lo, hi) : binary_span<Op, false, false>(big, small, out, lo, hi);
    });
  } else if (m == 1) {
    parallel_range(n, 16, [&](std::int64_t lo, std::int64_t hi) {
      smallFirst ? binary_span<Op, true, false>(small, big, out, lo, hi) : binary_span<Op, false, true>(big, small, out, lo, hi);
    });
  } else {
    // Rows of m: each row is an elementwise op against `small`.
    parallel_range(n, m, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t r = lo; r < hi; r += m) {
        const float* __restrict bg = big + r;
        float* __restrict o = out + r;
        if (smallFirst) {
          for (std::int64_t j = 0; j < m; j++) o[j] = apply<Op>(small[j], bg[j]);
        } else {
          for (std::int64_t j = 0; j < m; j++) o[j] = apply<Op>(bg[j], small[j]);
        }
      }
    });
  }
}

// out[i0, i1, i2, i3] = a[Σ i·sa] op b[Σ i·sb]: broadcasting in general, over dims collapsed to four
// in JavaScript (leading 1s; a stride is 0 where that operand broadcasts). The innermost dimension
// is contiguous in each operand or broadcast, so each output row is one vectorized span.
template <int Op>
void broadcast_binary(const float* a, const float* b, float* out, const std::int64_t* d, const std::int64_t* sa, const std::int64_t* sb) {
  const std::int64_t inner = d[3];
  parallel_range(d[0] * d[1] * d[2] * inner, inner, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / inner; r < hi / inner; r++) {
      const std::int64_t i2 = r % d[2], i1 = (r / d[2]) % d[1], i0 = r / (d[2] * d[1]);
      const float* pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
      const float* pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
      float* po = out + r * inner;
      if (sa[3] == 0 && sb[3] == 0) binary_span<Op, true, true>(pa, pb, po, 0, inner);
      else if (sa[3] == 0) binary_span<Op, true, false>(pa, pb, po, 0, inner);
      else if (sb[3] == 0) binary_span<Op, false, true>(pa, pb, po, 0, inner);
      else binary_span<Op, false, false>(pa, pb, po, 0, inner);
    }
  });
}

// exp_approx on a vector: the same steps lane by lane (GCC vector extensions), for loops whose
// rows are too short for the compiler to vectorize well (a 109-wide attention row kept 13 of its
// exps scalar).
typedef std::int32_t ivec __attribute__((vector_size(kLanes * sizeof(std::int32_t))));
inline vec exp_vec(vec x) {
  const vec lo = vec{} - 87.0f, hi = vec{} + 88.0f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  constexpr float kRound = 12582912.0f;
  const vec n = (x * 1.44269504088896341f + kRound) - kRound;
  vec r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  vec p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const ivec bits = (__builtin_convertvector(n, ivec) + 127) << 23;
  vec scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// RMSNorm over the last axis of [rows, cols] with a per-column weight, as LLaMA defines it:
// y = x · rs · w with rs = 1/sqrt(mean(x²) + eps) per row. Backward, with g = dy · w:
// dx = rs · g − x · rs³ · mean(g · x) per row, dw = Σ_rows dy · x · rs. Row sums in float vectors
// (a row is short: the LM's hidden size), finished in double; dw in float per task, then in double.
double dot_row(const float* a, const float* b, std::int64_t n) {
  vec acc{};
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) acc += loadv(a + j) * loadv(b + j);
  double s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  for (; j < n; j++) s += double(a[j]) * b[j];
  return s;
}

float rms_scale(const float* x, std::int64_t cols, double eps) {
  return float(1.0 / std::sqrt(dot_row(x, x, cols) / double(cols) + eps));
}

void rms_norm_forward(const float* x, const float* w, float* y, std::int64_t rows, std::int64_t cols, double eps) {
  parallel_range(rows * cols, cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / cols; r < hi / cols; r++) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      const float rs = rms_scale(xr, cols, eps);
      std::int64_t j = 0;
      for (; j + kLanes <= cols; j += kLanes) storev(yr + j, loadv(xr + j) * rs * loadv(w + j));
      for (; j < cols; j++) yr[j] = xr[j] * rs * w[j];
    }
  });
}

void rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, std::int64_t rows,
                       std::int64_t cols, double eps) {
  // Rows split over the tasks; each task sums its rows' dy · x · rs into its own float row of
  // partial dw, and the partials are added in double at the end.
  const int threads = pool->size();
  const int tasks = (threads == 1 || rows * cols < kParallelElements) ? 1 : static_cast<int>(std::min<std::int64_t>(rows, threads));
  const std::int64_t per = (rows + tasks - 1) / tasks;
  std::vector<float> partial(std::size_t(tasks) * cols, 0.0f);
  pool->run(tasks, [&](int t) {
    float* acc = partial.data() + std::size_t(t) * cols;
    for (std::int64_t r = t * per; r < std::min(rows, (t + 1) * per); r++) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const double rs = 1.0 / std::sqrt(dot_row(xr, xr, cols) / double(cols) + eps);
      vec gv{};  // Σ g · x with g = dy · w
      std::int64_t j = 0;
      for (; j + kLanes <= cols; j += kLanes) gv += loadv(dyr + j) * loadv(w + j) * loadv(xr + j);
      double gx = 0;
      for (int l = 0; l < kLanes; l++) gx += gv[l];
      for (; j < cols; j++) gx += double(dyr[j]) * w[j] * xr[j];
      const float a = float(rs), b = float(-rs * rs * rs * gx / double(cols));
      for (j = 0; j + kLanes <= cols; j += kLanes) {
        const vec d = loadv(dyr + j), xv = loadv(xr + j);
        storev(dxr + j, d * loadv(w + j) * a + xv * b);
        storev(acc + j, loadv(acc + j) + d * xv * a);
      }
      for (; j < cols; j++) {
        dxr[j] = dyr[j] * w[j] * a + xr[j] * b;
        acc[j] += dyr[j] * xr[j] * a;
      }
    }
  });
  for (std::int64_t c = 0; c < cols; c++) {
    double s = 0;
    for (int t = 0; t < tasks; t++) s += partial[std::size_t(t) * cols + c];
    dw[c] = float(s);
  }
}

// SwiGLU's gating, as LLaMA's MLP applies it between its projections: y = silu(g) · u = g · σ(g) · u;
// backward dg = dy · u · σ(g) · (1 + g · (1 − σ(g))), du = dy · g · σ(g). Elementwise, in chunks.
constexpr std::int64_t kElementChunk = 4096;

ETT_SPAN void swiglu_forward_span(const float* __restrict g, const float* __restrict u, float* __restrict y, std::int64_t lo,
                                  std::int64_t hi) {
  for (std::int64_t i = lo; i < hi; i++) y[i] = g[i] * sigmoid(g[i]) * u[i];
}

ETT_SPAN void swiglu_backward_span(const float* __restrict g, const float* __restrict u, const float* __restrict dy, float* __restrict dg,
                                   float* __restrict du, std::int64_t lo, std::int64_t hi) {
  for (std::int64_t i = lo; i < hi; i++) {
    const float s = sigmoid(g[i]);
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

void swiglu_forward(const float* g, const float* u, float* y, std::int64_t n) {
  parallel_range(n, kElementChunk, [&](std::int64_t lo, std::int64_t hi) { swiglu_forward_span(g, u, y, lo, hi); });
}

void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, std::int64_t n) {
  parallel_range(n, kElementChunk, [&](std::int64_t lo, std::int64_t hi) { swiglu_backward_span(g, u, dy, dg, du, lo, hi); });
}

// Softmax over the last axis of [rows, cols]: out = e^(x − max) / Σ e^(x − max) per row, in vectors
// of kLanes (a row's tail through a vector padded with −inf); exp by exp_vec, 0 where x − max <
// −87.3 (e.g. a −inf mask). NaN or +inf in a row makes the row NaN, and so does a row of only −inf
// (0/0), as the definition gives.
void softmax_rows(const float* x, float* out, std::int64_t rows, std::int64_t cols) {
  const std::int64_t full = cols / kLanes * kLanes, tail = cols - full;
  const vec ninf = vec{} - HUGE_VALF;
  parallel_range(rows * cols, cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / cols; r < hi / cols; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      vec last = ninf;
      if (tail > 0) std::memcpy(&last, xr + full, sizeof(float) * tail);
      vec mv = last;
      ivec bad = (last != last) | (last == -ninf);
      for (std::int64_t j = 0; j < full; j += kLanes) {
        const vec v = loadv(xr + j);
        mv = v > mv ? v : mv;
        bad |= (v != v) | (v == -ninf);
      }
      float mx = -HUGE_VALF;
      bool nan = false;
      for (int l = 0; l < kLanes; l++) {
        mx = mv[l] > mx ? mv[l] : mx;
        nan = nan || bad[l] != 0;
      }
      if (nan) {
        for (std::int64_t j = 0; j < cols; j++) o[j] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      if (mx == -HUGE_VALF) mx = 0.0f;  // every entry −inf: the sum below is 0, the row 0/0 = NaN
      const vec cut = vec{} - 87.3365f;
      vec acc{};
      auto expv = [&](vec v) {
        const vec d = v - mx;
        const vec e = exp_vec(d);
        return d < cut ? vec{} : e;
      };
      for (std::int64_t j = 0; j < full; j += kLanes) {
        const vec e = expv(loadv(xr + j));
        storev(o + j, e);
        acc += e;
      }
      if (tail > 0) {
        const vec e = expv(last);  // the −inf padding gives 0
        std::memcpy(o + full, &e, sizeof(float) * tail);
        acc += e;
      }
      float sum = 0.0f;
      for (int l = 0; l < kLanes; l++) sum += acc[l];
      const float inv = 1.0f / sum;
      for (std::int64_t j = 0; j < cols; j++) o[j] *= inv;
    }
  });
}

// AvgPoolGrad with tfjs's semantics: dx[b, iy, ix, c] = Σ over the windows (oy, ox) that cover
// (iy, ix) of dy[b, oy, ox, c] / (fh·fw) (the full window size also where 'same' padding cut the
// window). Separable: each dy row is first spread to input columns (for stride 1 as fw shifted adds
// of the whole row, else gathered per column), then input rows sum the spread rows of their windows.
// The window ranges are computed once per call: per pixel they cost two integer divisions, which
// made the first version 12 ns per element (0.29 ms for the structural loss's [8, 32, 32, 3] box
// filter; tfjs-backend-wasm's kernel took 19 ns).
void avg_pool_grad(const float* dy, float* dx, int batch, int ch, int inH, int inW, int outH, int outW, int sh, int sw, int fh, int fw,
                   int top, int left) {
  const float scale = 1.0f / float(fh * fw);
  // The windows o that cover input i: o·s − pad ≤ i ≤ o·s − pad + f − 1, within [0, out); empty when lo > hi.
  auto ranges = [](int in, int out, int pad, int f, int s, std::vector<int>& lo, std::vector<int>& hi) {
    lo.resize(in);
    hi.resize(in);
    for (int i = 0; i < in; i++) {
      const int a = i + pad - f + 1;
      lo[i] = a <= 0 ? 0 : (a + s - 1) / s;
      hi[i] = std::min(out - 1, (i + pad) / s);
    }
  };
  std::vector<int> xlo, xhi, ylo, yhi;
  ranges(inW, outW, left, fw, sw, xlo, xhi);
  ranges(inH, outH, top, fh, sh, ylo, yhi);
  const std::int64_t inRow = std::int64_t(inW) * ch, outRow = std::int64_t(outW) * ch;
  auto image = [&](int b) {
    std::vector<float> spread(std::size_t(outH) * inRow);
    for (int oy = 0; oy < outH; oy++) {
      const float* __restrict g = dy + (std::int64_t(b) * outH + oy) * outRow;
      float* __restrict c = spread.data() + std::int64_t(oy) * inRow;
      if (sw == 1) {
        // Window ox covers ix = ox − left + t for t < fw: the row, shifted by t − left, added whole.
        for (std::int64_t j = 0; j < inRow; j++) c[j] = 0.0f;
        for (int t = 0; t < fw; t++) {
          const int shift = t - left;  // ix = ox + shift
          const int ox0 = std::max(0, -shift), ox1 = std::min(outW, inW - shift);
          if (ox0 >= ox1) continue;
          float* __restrict o = c + std::int64_t(ox0 + shift) * ch;
          const float* __restrict gg = g + std::int64_t(ox0) * ch;
          const std::int64_t n = std::int64_t(ox1 - ox0) * ch;
          for (std::int64_t j = 0; j < n; j++) o[j] += gg[j];
        }
      } else {
        for (int ix = 0; ix < inW; ix++) {
          float* o = c + std::int64_t(ix) * ch;
          for (int k = 0; k < ch; k++) o[k] = 0.0f;
          for (int ox = xlo[ix]; ox <= xhi[ix]; ox++) {
            const float* gg = g + std::int64_t(ox) * ch;
            for (int k = 0; k < ch; k++) o[k] += gg[k];
          }
        }
      }
    }
    for (int iy = 0; iy < inH; iy++) {
      float* __restrict o = dx + (std::int64_t(b) * inH + iy) * inRow;
      for (std::int64_t j = 0; j < inRow; j++) o[j] = 0.0f;
      for (int oy = ylo[iy]; oy <= yhi[iy]; oy++) {
        const float* __restrict c = spread.data() + std::int64_t(oy) * inRow;
        for (std::int64_t j = 0; j < inRow; j++) o[j] += c[j];
      }
      for (std::int64_t j = 0; j < inRow; j++) o[j] *= scale;
    }
  };
  if (batch == 1 || std::int64_t(batch) * inH * inRow < kParallelElements) {
    for (int b = 0; b < batch; b++) image(b);
  } else {
    pool->run(batch, image);
  }
}

// dst[Σ i·ds] = src[Σ i·ss] over the index box d (four dimensions, strides in elements): the data
// movement of Transpose, Slice, SplitV, Concat and PadV2, for 4-byte elements (float32 and int32
// alike: bits are copied, never converted). Rows of the innermost dimension are one memcpy where
// both sides are contiguous, else a strided loop; rows split over the pool when the box is large.
void copy_strided(const std::uint32_t* src, std::uint32_t* dst, const std::int64_t* d, const std::int64_t* ss, const std::int64_t* ds) {
  const std::int64_t inner = d[3];
  parallel_range(d[0] * d[1] * d[2] * inner, inner, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / inner; r < hi / inner; r++) {
      const std::int64_t i2 = r % d[2], i1 = (r / d[2]) % d[1], i0 = r / (d[2] * d[1]);
      const std::uint32_t* __restrict s = src + i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
      std::uint32_t* __restrict o = dst + i0 * ds[0] + i1 * ds[1] + i2 * ds[2];
      if (ss[3] == 1 && ds[3] == 1) {
        std::memcpy(o, s, std::size_t(inner) * sizeof(std::uint32_t));
      } else {
        for (std::int64_t j = 0; j < inner; j++) o[j * ds[3]] = s[j * ss[3]];
      }
    }
  });
}

// LeakyReLU as tfjs defines it: y = x < 0 ? α·x : x; its gradient dx = x > 0 ? dy : α·dy (tfjs's
// where(x > 0, dy, α·dy): at x = 0 and for NaN x the α branch).
ETT_SPAN void leaky_relu_span(const float* __restrict x, float* __restrict y, float alpha, std::int64_t lo, std::int64_t hi) {
  for (std::int64_t i = lo; i < hi; i++) y[i] = x[i] < 0.0f ? alpha * x[i] : x[i];
}
ETT_SPAN void leaky_relu_grad_span(const float* __restrict x, const float* __restrict dy, float* __restrict dx, float alpha, std::int64_t lo,
                          std::int64_t hi) {
  for (std::int64_t i = lo; i < hi; i++) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
}

// exp over float32, vectorized: exp_approx where the result is a normal float, 0 below (a
// denormal, which these kernels flush anyway), +inf above, NaN for NaN.
ETT_SPAN void exp_span(const float* __restrict x, float* __restrict out, std::int64_t lo, std::int64_t hi) {
  for (std::int64_t i = lo; i < hi; i++) {
    const float v = x[i];
    const float e = exp_approx(v);
    out[i] = v < -87.3365f ? 0.0f : v > 88.7228f ? HUGE_VALF : v != v ? v : e;
  }
}

// out[c] = Σ_r x[r, c] (leading) or out[r] = Σ_c x[r, c] (trailing), accumulated in double and
// divided by `divisor` there (1 for Sum, the reduced count for Mean) before the one rounding to float.
void sum_leading(const float* x, float* out, std::int64_t rows, std::int64_t cols, double divisor) {
  const int threads = pool->size();
  const int tasks = (threads == 1 || rows * cols < kParallelElements) ? 1 : static_cast<int>(std::min<std::int64_t>(rows, threads));
  const std::int64_t per = (rows + tasks - 1) / tasks;
  std::vector<double> partial(std::size_t(tasks) * cols, 0.0);
  pool->run(tasks, [&](int t) {
    double* __restrict acc = partial.data() + std::size_t(t) * cols;
    const std::int64_t lo = t * per, hi = std::min(rows, lo + per);
    for (std::int64_t r = lo; r < hi; r++) {
      const float* __restrict row = x + r * cols;
      for (std::int64_t c = 0; c < cols; c++) acc[c] += row[c];
    }
  });
  for (std::int64_t c = 0; c < cols; c++) {
    double s = 0;
    for (int t = 0; t < tasks; t++) s += partial[std::size_t(t) * cols + c];
    out[c] = float(s / divisor);
  }
}

void sum_trailing(const float* x, float* out, std::int64_t rows, std::int64_t cols, double divisor) {
  parallel_range(rows * cols, cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / cols; r < hi / cols; r++) {
      const float* __restrict row = x + r * cols;
      // 16 float lanes summed in double per block of 1024: vectorizes without reassociating a double sum.
      double s = 0;
      for (std::int64_t c0 = 0; c0 < cols; c0 += 1024) {
        const std::int64_t c1 = std::min(cols, c0 + 1024);
        float lanes[16] = {0};
        std::int64_t c = c0;
        for (; c + 16 <= c1; c += 16)
          for (int l = 0; l < 16; l++) lanes[l] += row[c + l];
        for (; c < c1; c++) lanes[0] += row[c];
        for (int l = 0; l < 16; l++) s += lanes[l];
      }
      out[r] = float(s / divisor);
    }
  });
}

// out[r] = max over row r of [rows, cols]; NaN if the row has one (as tfjs's cpu kernel).
void max_trailing(const float* x, float* out, std::int64_t rows, std::int64_t cols) {
  parallel_range(rows * cols, cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / cols; r < hi / cols; r++) {
      const float* row = x + r * cols;
      vec m = vec{} - HUGE_VALF;
      ivec nan{};
      std::int64_t c = 0;
      for (; c + kLanes <= cols; c += kLanes) {
        const vec v = loadv(row + c);
        m = v > m ? v : m;
        nan |= v != v;
      }
      float best = -HUGE_VALF;
      bool any = false;
      for (int l = 0; l < kLanes; l++) {
        best = m[l] > best ? m[l] : best;
        any = any || nan[l] != 0;
      }
      for (; c < cols; c++) {
        best = row[c] > best ? row[c] : best;
        any = any || row[c] != row[c];
      }
      out[r] = any ? std::numeric_limits<float>::quiet_NaN() : best;
    }
  });
}

// out[r] = the index of the first maximum of row r, as tfjs's kernels scan it (`if (v > best)` from
// element 0): NaN elements after the first never win, a row starting with NaN gives 0. Vectorized as
// the maximum over the row's non-NaN elements, then the first index holding it.
void argmax_trailing(const float* x, std::int32_t* out, std::int64_t rows, std::int64_t cols) {
  parallel_range(rows * cols, cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo / cols; r < hi / cols; r++) {
      const float* row = x + r * cols;
      if (row[0] != row[0]) {
        out[r] = 0;
        continue;
      }
      vec m = vec{} + row[0];
      std::int64_t c = 0;
      for (; c + kLanes <= cols; c += kLanes) {
        const vec v = loadv(row + c);
        m = v > m ? v : m;  // false for NaN: m keeps its lane
      }
      float best = row[0];
      for (int l = 0; l < kLanes; l++) best = m[l] > best ? m[l] : best;
      for (; c < cols; c++) best = row[c] > best ? row[c] : best;
      std::int64_t at = 0;
      while (!(row[at] == best)) at++;
      out[r] = std::int32_t(at);
    }
  });
}

// tfjs's AvgPool for 'valid' windows (no padding; every window whole): y = Σ_window x / (fh·fw).
// Separable per output row: the fh input rows of its window summed (vectors over the whole row),
// then the fw columns of each window (for stride 1 as fw shifted vector adds).
void avg_pool_valid(const float* x, float* y, int batch, int ch, int inH, int inW, int outH, int outW, int sh, int sw, int fh, int fw) {
  const float count = float(fh * fw);
  const std::int64_t inRow = std::int64_t(inW) * ch, outRow = std::int64_t(outW) * ch;
  auto rows = [&](int row) {
    const int b = row / outH, oy = row % outH;
    std::vector<float> cols(inRow, 0.0f);
    float* __restrict c = cols.data();
    for (int ky = 0; ky < fh; ky++) {
      const float* __restrict xr = x + (std::int64_t(b) * inH + oy * sh + ky) * inRow;
      for (std::int64_t j = 0; j < inRow; j++) c[j] += xr[j];
    }
    float* __restrict o = y + (std::int64_t(b) * outH + oy) * outRow;
    if (sw == 1) {
      for (std::int64_t j = 0; j < outRow; j++) o[j] = c[j];
      for (int kx = 1; kx < fw; kx++) {
        const float* __restrict cs = c + std::int64_t(kx) * ch;
        for (std::int64_t j = 0; j < outRow; j++) o[j] += cs[j];
      }
    } else {
      for (int ox = 0; ox < outW; ox++) {
        float* oo = o + std::int64_t(ox) * ch;
        for (int k = 0; k < ch; k++) oo[k] = 0.0f;
        for (int kx = 0; kx < fw; kx++) {
          const float* cs = c + std::int64_t(ox * sw + kx) * ch;
          for (int k = 0; k < ch; k++) oo[k] += cs[k];
        }
      }
    }
    for (std::int64_t j = 0; j < outRow; j++) o[j] /= count;
  };
  if (std::int64_t(batch) * outH * outRow * fh * fw < kParallelElements) {
    for (int row = 0; row < batch * outH; row++) rows(row);
  } else {
    pool->run(batch * outH, rows);
  }
}

// Σ over many float spans of x², in float vectors per block of 1024 added in double.
double sum_squares(const float* x, std::int64_t n) {
  double s = 0;
  for (std::int64_t c0 = 0; c0 < n; c0 += 1024) {
    const std::int64_t c1 = std::min(n, c0 + 1024);
    vec acc{};
    std::int64_t c = c0;
    for (; c + kLanes <= c1; c += kLanes) {
      const vec v = loadv(x + c);
      acc += v * v;
    }
    for (int l = 0; l < kLanes; l++) s += acc[l];
    for (; c < c1; c++) s += double(x[c]) * x[c];
  }
  return s;
}

// groupNorm(mode, heap, x, gamma, beta, dy, out, dgamma, dbeta, batch, hw, c, groups, silu, eps):
// offsets in floats; mode 0 forward (x, gamma, beta -> out; dy, dgamma, dbeta unused), 1 backward
// (x, gamma, beta, dy -> out = dx, dgamma, dbeta).
napi_value GroupNorm(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  if (!get_args(env, info, 15, argv, "groupNorm")) return nullptr;
  std::int64_t mode, o[7], d[5];
  float* heap;
  std::size_t length;
  double eps;
  if (!get_ints(env, argv, 0, 1, &mode) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 7, o) ||
      !get_ints(env, argv, 9, 5, d))
    return nullptr;
  if (napi_get_value_double(env, argv[14], &eps) != napi_ok || !(eps >= 0)) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: groupNorm eps must be a number >= 0");
    return nullptr;
  }
  const std::int64_t batch = d[0], hw = d[1], c = d[2], groups = d[3];
  if ((mode != 0 && mode != 1) || batch < 1 || hw < 1 || c < 1 || groups < 1 || c % groups != 0 || batch * hw * c > (std::int64_t(1) << 40)) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid groupNorm arguments");
    return nullptr;
  }
  const std::int64_t size = batch * hw * c;
  if (!in_heap(env, length, o[0], size) || !in_heap(env, length, o[1], c) || !in_heap(env, length, o[2], c) ||
      !in_heap(env, length, o[4], size))
    return nullptr;
  if (mode == 1 && (!in_heap(env, length, o[3], size) || !in_heap(env, length, o[5], c) || !in_heap(env, length, o[6], c)))
    return nullptr;
  GroupNormArgs a{heap + o[0], heap + o[1], heap + o[2], heap + o[3], heap + o[4], heap + o[5], heap + o[6],
                  int(batch), int(hw), int(c), int(groups), d[4] != 0, eps};
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (mode == 0) group_norm_forward(a);
  else group_norm_backward(a);
  return nullptr;
}

// rmsNorm(mode, heap, x, w, dy, out, dw, rows, cols, eps): mode 0 writes y to out; mode 1 the
// gradients dx to out and dw (dy and dw unused in mode 0).
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv, "rmsNorm")) return nullptr;
  std::int64_t mode, o[5], d[2];
  float* heap;
  std::size_t length;
  double eps;
  if (!get_ints(env, argv, 0, 1, &mode) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 5, o) ||
      !get_ints(env, argv, 7, 2, d))
    return nullptr;
  if (napi_get_value_double(env, argv[9], &eps) != napi_ok || !(eps >= 0)) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: rmsNorm eps must be a number >= 0");
    return nullptr;
  }
  const std::int64_t rows = d[0], cols = d[1];
  if ((mode != 0 && mode != 1) || rows < 1 || cols < 1 || rows * cols > (std::int64_t(1) << 40)) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid rmsNorm arguments");
    return nullptr;
  }
  const std::int64_t size = rows * cols;
  if (!in_heap(env, length, o[0], size) || !in_heap(env, length, o[1], cols) || !in_heap(env, length, o[3], size)) return nullptr;
  if (mode == 1 && (!in_heap(env, length, o[2], size) || !in_heap(env, length, o[4], cols))) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (mode == 0) rms_norm_forward(heap + o[0], heap + o[1], heap + o[3], rows, cols, eps);
  else rms_norm_backward(heap + o[0], heap + o[1], heap + o[2], heap + o[3], heap + o[4], rows, cols, eps);
  return nullptr;
}

// swiglu(mode, heap, g, u, dy, out, out2, n): mode 0 writes y to out; mode 1 dg to out and du to
// out2 (dy and out2 unused in mode 0).
napi_value Swiglu(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "swiglu")) return nullptr;
  std::int64_t mode, o[5], n;
  float* heap;
  std::size_t length;
  if (!get_ints(env, argv, 0, 1, &mode) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 5, o) ||
      !get_ints(env, argv, 7, 1, &n))
    return nullptr;
  if ((mode != 0 && mode != 1) || n < 1) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid swiglu arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], n) || !in_heap(env, length, o[1], n) || !in_heap(env, length, o[3], n)) return nullptr;
  if (mode == 1 && (!in_heap(env, length, o[2], n) || !in_heap(env, length, o[4], n))) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (mode == 0) swiglu_forward(heap + o[0], heap + o[1], heap + o[3], n);
  else swiglu_backward(heap + o[0], heap + o[1], heap + o[2], heap + o[3], heap + o[4], n);
  return nullptr;
}

struct AdamWHyper {
  float b1, b2, c1, c2, eps, decay, stepSize, bc2;
};

// One parameter's AdamW update (m', v', p' into their own outputs). A function of its own with
// restrict pointers: written inline in the pool's lambda, GCC left the loop scalar.
ETT_SPAN void adamw_span(const float* __restrict p, const float* __restrict g, const float* __restrict m, const float* __restrict v,
                float* __restrict mo, float* __restrict vo, float* __restrict po, std::int32_t n, AdamWHyper h) {
  for (std::int32_t k = 0; k < n; k++) {
    const float mn = m[k] * h.b1 + g[k] * h.c1;
    const float vn = v[k] * h.b2 + (g[k] * g[k]) * h.c2;
    mo[k] = mn;
    vo[k] = vn;
    po[k] = p[k] * h.decay - (mn / (std::sqrt(vn) / h.bc2 + h.eps)) * h.stepSize;
  }
}

// adamw(heap, table, count, b1, b2, eps, decay, stepSize, bc2Sqrt): one AdamW step of `count`
// parameters. table (Int32Array, 8 per parameter): offsets of param, grad, m, v, and of the new m,
// v, param, then the size. m' = b1·m + (1 − b1)·g; v' = b2·v + (1 − b2)·g²;
// p' = decay·p − stepSize · m' / (sqrt(v') / bc2Sqrt + eps), in float as tfjs's ops compute it.
napi_value AdamW(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!get_args(env, info, 9, argv, "adamw")) return nullptr;
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length)) return nullptr;
  napi_typedarray_type type;
  void* ptr = nullptr;
  napi_value buffer;
  std::size_t offset, entries;
  if (napi_get_typedarray_info(env, argv[1], &type, &entries, &ptr, &buffer, &offset) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: the adamw table must be an Int32Array");
    return nullptr;
  }
  const std::int32_t* table = static_cast<const std::int32_t*>(ptr);
  std::int64_t count;
  double h[6];
  if (!get_ints(env, argv, 2, 1, &count)) return nullptr;
  for (int i = 0; i < 6; i++)
    if (napi_get_value_double(env, argv[3 + i], &h[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "@ettjs/backend native: adamw hyperparameters must be numbers");
      return nullptr;
    }
  if (count < 0 || std::size_t(count) * 8 > entries) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid adamw table");
    return nullptr;
  }
  for (std::int64_t i = 0; i < count; i++) {
    const std::int32_t* e = table + i * 8;
    for (int j = 0; j < 7; j++)
      if (!in_heap(env, length, e[j], e[7])) return nullptr;
  }
  const float b1 = float(h[0]), b2 = float(h[1]), eps = float(h[2]), decay = float(h[3]), stepSize = float(h[4]), bc2 = float(h[5]);
  const float c1 = float(1.0 - h[0]), c2 = float(1.0 - h[1]);  // as tf.mul(g, 1 - b1): 1 − b1 in double, then float
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  const AdamWHyper hp{b1, b2, c1, c2, eps, decay, stepSize, bc2};
  pool->run(static_cast<int>(count), [&](int i) {
    const std::int32_t* e = table + std::int64_t(i) * 8;
    adamw_span(heap + e[0], heap + e[1], heap + e[2], heap + e[3], heap + e[4], heap + e[5], heap + e[6], e[7], hp);
  });
  return nullptr;
}

// binary(op, heap, big, small, out, n, m, smallFirst): out[i] = big[i] op small[i % m], or
// small[i % m] op big[i] when smallFirst; op 0 add, 1 sub, 2 mul, 3 div; m divides n.
napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "binary")) return nullptr;
  std::int64_t op, o[3], d[3];
  float* heap;
  std::size_t length;
  if (!get_ints(env, argv, 0, 1, &op) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 3, o) ||
      !get_ints(env, argv, 5, 3, d))
    return nullptr;
  const std::int64_t n = d[0], m = d[1];
  if (op < 0 || op > 3 || n < 1 || m < 1 || n % m != 0) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid binary arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], n) || !in_heap(env, length, o[1], m) || !in_heap(env, length, o[2], n)) return nullptr;
  const float *big = heap + o[0], *small = heap + o[1];
  float* out = heap + o[2];
  const bool smallFirst = d[2] != 0;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  dispatch_op(op, [&](auto c) { binary<decltype(c)::value>(big, small, out, n, m, smallFirst); });
  return nullptr;
}

// broadcast(op, heap, a, b, out, d0..d3, sa0..sa3, sb0..sb3): out = a op b (see broadcast_binary).
napi_value Broadcast(napi_env env, napi_callback_info info) {
  napi_value argv[17];
  if (!get_args(env, info, 17, argv, "broadcast")) return nullptr;
  std::int64_t op, o[3], d[4], sa[4], sb[4];
  float* heap;
  std::size_t length;
  if (!get_ints(env, argv, 0, 1, &op) || !get_heap(env, argv[1], &heap, &length) || !get_ints(env, argv, 2, 3, o) ||
      !get_ints(env, argv, 5, 4, d) || !get_ints(env, argv, 9, 4, sa) || !get_ints(env, argv, 13, 4, sb))
    return nullptr;
  bool ok = op >= 0 && op <= 3;
  std::int64_t n = 1, lastA = 0, lastB = 0;
  for (int k = 0; k < 4; k++) {
    ok = ok && d[k] >= 1 && sa[k] >= 0 && sb[k] >= 0;
    n *= d[k];
    lastA += (d[k] - 1) * sa[k];
    lastB += (d[k] - 1) * sb[k];
  }
  ok = ok && (sa[3] == 0 || sa[3] == 1) && (sb[3] == 0 || sb[3] == 1);
  if (!ok) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid broadcast arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], lastA + 1) || !in_heap(env, length, o[1], lastB + 1) || !in_heap(env, length, o[2], n)) return nullptr;
  const float *a = heap + o[0], *b = heap + o[1];
  float* out = heap + o[2];
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  dispatch_op(op, [&](auto c) { broadcast_binary<decltype(c)::value>(a, b, out, d, sa, sb); });
  return nullptr;
}

// avgPoolGrad(heap, dy, dx, batch, channels, inH, inW, outH, outW, strideH, strideW, filterH, filterW, padTop, padLeft).
napi_value AvgPoolGrad(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  if (!get_args(env, info, 15, argv, "avgPoolGrad")) return nullptr;
  std::int64_t o[2], v[12];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 12, v)) return nullptr;
  const std::int64_t batch = v[0], ch = v[1], inH = v[2], inW = v[3], outH = v[4], outW = v[5];
  bool ok = true;
  for (int k = 0; k < 10; k++) ok = ok && v[k] >= 1 && v[k] <= (std::int64_t(1) << 30);
  ok = ok && v[10] >= 0 && v[11] >= 0 && v[10] < v[8] && v[11] < v[9];
  if (!ok) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid avgPoolGrad arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], batch * outH * outW * ch) || !in_heap(env, length, o[1], batch * inH * inW * ch)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  avg_pool_grad(heap + o[0], heap + o[1], int(batch), int(ch), int(inH), int(inW), int(outH), int(outW), int(v[6]), int(v[7]), int(v[8]),
                int(v[9]), int(v[10]), int(v[11]));
  return nullptr;
}

// softmax(heap, x, out, rows, cols): softmax over the last axis.
napi_value Softmax(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "softmax")) return nullptr;
  std::int64_t o[2], d[2];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 2, d)) return nullptr;
  if (d[0] < 1 || d[1] < 1) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid softmax arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], d[0] * d[1]) || !in_heap(env, length, o[1], d[0] * d[1])) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  softmax_rows(heap + o[0], heap + o[1], d[0], d[1]);
  return nullptr;
}

// exp(heap, x, out, n): out[i] = e^x[i].
napi_value Exp(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "exp")) return nullptr;
  std::int64_t o[3];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 3, o)) return nullptr;
  const std::int64_t n = o[2];
  if (n < 1 || !in_heap(env, length, o[0], n) || !in_heap(env, length, o[1], n)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  parallel_range(n, 16, [&](std::int64_t lo, std::int64_t hi) { exp_span(heap + o[0], heap + o[1], lo, hi); });
  return nullptr;
}

// sum(heap, x, out, rows, cols, leading, divisor): out[c] = Σ_r x[r, c] / divisor when leading,
// else out[r] = Σ_c x[r, c] / divisor (divisor 1: Sum; the reduced count: Mean).
napi_value Sum(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv, "sum")) return nullptr;
  std::int64_t o[2], d[4];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 4, d)) return nullptr;
  const std::int64_t rows = d[0], cols = d[1], divisor = d[3];
  const bool leading = d[2] != 0;
  if (rows < 1 || cols < 1 || divisor < 1) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid sum arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], rows * cols) || !in_heap(env, length, o[1], leading ? cols : rows)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (leading) sum_leading(heap + o[0], heap + o[1], rows, cols, double(divisor));
  else sum_trailing(heap + o[0], heap + o[1], rows, cols, double(divisor));
  return nullptr;
}

// copy(heap, src, dst, d0..d3, ss0..ss3, ds0..ds3): dst[Σ i·ds] = src[Σ i·ss] for i within d (see
// copy_strided); 4-byte elements, strides ≥ 0.
napi_value Copy(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  if (!get_args(env, info, 15, argv, "copy")) return nullptr;
  std::int64_t o[2], d[4], ss[4], ds[4];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 4, d) ||
      !get_ints(env, argv, 7, 4, ss) || !get_ints(env, argv, 11, 4, ds))
    return nullptr;
  bool ok = true;
  std::int64_t lastS = 0, lastD = 0;
  for (int k = 0; k < 4; k++) {
    ok = ok && d[k] >= 1 && ss[k] >= 0 && ds[k] >= 0;
    lastS += (d[k] - 1) * ss[k];
    lastD += (d[k] - 1) * ds[k];
  }
  if (!ok) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid copy arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], lastS + 1) || !in_heap(env, length, o[1], lastD + 1)) return nullptr;
  std::uint32_t* words = reinterpret_cast<std::uint32_t*>(heap);
  std::lock_guard<std::mutex> lock(calls);
  copy_strided(words + o[0], words + o[1], d, ss, ds);
  return nullptr;
}

// leakyRelu(heap, x, dy, out, n, alpha, grad): out = leakyRelu(x) (grad 0, dy ignored) or its
// gradient dy → dx (grad 1).
napi_value LeakyRelu(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv, "leakyRelu")) return nullptr;
  std::int64_t o[4], grad;
  double alpha;
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 4, o) || !get_ints(env, argv, 6, 1, &grad)) return nullptr;
  if (napi_get_value_double(env, argv[5], &alpha) != napi_ok) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: leakyRelu's alpha must be a number");
    return nullptr;
  }
  const std::int64_t n = o[3];
  if (n < 1 || !in_heap(env, length, o[0], n) || !in_heap(env, length, o[2], n) || (grad != 0 && !in_heap(env, length, o[1], n)))
    return nullptr;
  const float a = float(alpha);
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  if (grad != 0) {
    parallel_range(n, 16, [&](std::int64_t lo, std::int64_t hi) { leaky_relu_grad_span(heap + o[0], heap + o[1], heap + o[2], a, lo, hi); });
  } else {
    parallel_range(n, 16, [&](std::int64_t lo, std::int64_t hi) { leaky_relu_span(heap + o[0], heap + o[2], a, lo, hi); });
  }
  return nullptr;
}

// argMax(heap, x, out, rows, cols): out[r] (int32) = the first index of row r's maximum (argmax_trailing).
napi_value ArgMax(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "argMax")) return nullptr;
  std::int64_t o[2], d[2];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 2, d)) return nullptr;
  if (d[0] < 1 || d[1] < 1 || d[1] > std::numeric_limits<std::int32_t>::max()) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid argMax arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], d[0] * d[1]) || !in_heap(env, length, o[1], d[0])) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  argmax_trailing(heap + o[0], reinterpret_cast<std::int32_t*>(heap + o[1]), d[0], d[1]);
  return nullptr;
}

// avgPool(heap, x, y, batch, channels, inH, inW, outH, outW, strideH, strideW, filterH, filterW): 'valid' windows only.
napi_value AvgPool(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  if (!get_args(env, info, 13, argv, "avgPool")) return nullptr;
  std::int64_t o[2], v[10];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 10, v)) return nullptr;
  const std::int64_t batch = v[0], ch = v[1], inH = v[2], inW = v[3], outH = v[4], outW = v[5];
  bool ok = true;
  for (int k = 0; k < 10; k++) ok = ok && v[k] >= 1 && v[k] <= (std::int64_t(1) << 30);
  ok = ok && (outH - 1) * v[6] + v[8] <= inH && (outW - 1) * v[7] + v[9] <= inW;
  if (!ok) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid avgPool arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], batch * inH * inW * ch) || !in_heap(env, length, o[1], batch * outH * outW * ch)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  FlushDenormals flush;
  avg_pool_valid(heap + o[0], heap + o[1], int(batch), int(ch), int(inH), int(inW), int(outH), int(outW), int(v[6]), int(v[7]), int(v[8]),
                 int(v[9]));
  return nullptr;
}

// max(heap, x, out, rows, cols): out[r] = max of row r.
napi_value Max(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "max")) return nullptr;
  std::int64_t o[2], d[2];
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length) || !get_ints(env, argv, 1, 2, o) || !get_ints(env, argv, 3, 2, d)) return nullptr;
  if (d[0] < 1 || d[1] < 1) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid max arguments");
    return nullptr;
  }
  if (!in_heap(env, length, o[0], d[0] * d[1]) || !in_heap(env, length, o[1], d[0])) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  max_trailing(heap + o[0], heap + o[1], d[0], d[1]);
  return nullptr;
}

// sumSquares(heap, table, count, out): out = Σ over `count` spans (table: Int32Array of offset, size
// pairs, in floats) of x², rounded once to float.
napi_value SumSquares(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "sumSquares")) return nullptr;
  float* heap;
  std::size_t length;
  if (!get_heap(env, argv[0], &heap, &length)) return nullptr;
  napi_typedarray_type type;
  void* ptr = nullptr;
  napi_value buffer;
  std::size_t offset, entries;
  if (napi_get_typedarray_info(env, argv[1], &type, &entries, &ptr, &buffer, &offset) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, "@ettjs/backend native: the sumSquares table must be an Int32Array");
    return nullptr;
  }
  const std::int32_t* table = static_cast<const std::int32_t*>(ptr);
  std::int64_t count, out;
  if (!get_ints(env, argv, 2, 1, &count) || !get_ints(env, argv, 3, 1, &out)) return nullptr;
  if (count < 0 || std::size_t(count) * 2 > entries) {
    napi_throw_range_error(env, nullptr, "@ettjs/backend native: invalid sumSquares table");
    return nullptr;
  }
  if (!in_heap(env, length, out, 1)) return nullptr;
  for (std::int64_t i = 0; i < count; i++)
    if (!in_heap(env, length, table[2 * i], table[2 * i + 1])) return nullptr;
  double total = 0;
  for (std::int64_t i = 0; i < count; i++) total += sum_squares(heap + table[2 * i], table[2 * i + 1]);
  heap[out] = float(total);
  return nullptr;
}

// setThreads(n) -> n actually used; threads() -> current count.
napi_value SetThreads(napi_env env, napi_callback_info info) {
  std::size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::int64_t n = 0;
  if (argc != 1 || !get_ints(env, argv, 0, 1, &n)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  pool->resize(static_cast<int>(n));
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, pool->size(), &out));
  return out;
}

// setScratchLimit(floats) -> the previous limit.
napi_value SetScratchLimit(napi_env env, napi_callback_info info) {
  std::size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::int64_t n = 0;
  if (argc != 1 || !get_ints(env, argv, 0, 1, &n)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  const std::int64_t previous = scratchFloats;
  scratchFloats = std::max<std::int64_t>(1, n);
  napi_value out;
  NAPI_CALL(env, napi_create_int64(env, previous, &out));
  return out;
}

// setSpin(micros) -> the previous spin time of the pool (see Pool).
napi_value SetSpin(napi_env env, napi_callback_info info) {
  std::size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::int64_t n = 0;
  if (argc != 1 || !get_ints(env, argv, 0, 1, &n)) return nullptr;
  std::lock_guard<std::mutex> lock(calls);
  const int previous = pool->spin();
  pool->setSpin(static_cast<int>(std::min<std::int64_t>(n, 100000)));
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, previous, &out));
  return out;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, pool->size(), &out));
  return out;
}

napi_value Isa(napi_env env, napi_callback_info) {
  napi_value out;
  NAPI_CALL(env, napi_create_string_utf8(env, ETTJS_ISA, NAPI_AUTO_LENGTH, &out));
  return out;
}

void Cleanup(void*) {
  std::lock_guard<std::mutex> lock(calls);
  if (--environments == 0) {
    delete pool;
    pool = nullptr;
  }
}

napi_value Init(napi_env env, napi_value exports) {
  {
    std::lock_guard<std::mutex> lock(calls);
    if (pool == nullptr) {
      const unsigned hw = std::thread::hardware_concurrency();
      pool = new Pool(hw == 0 ? 1 : static_cast<int>(hw), 200);
    }
    environments++;
  }
  // Joins the workers when the last environment goes away; otherwise process exit waits on them.
  NAPI_CALL(env, napi_add_env_cleanup_hook(env, Cleanup, nullptr));
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"groupNorm", nullptr, GroupNorm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsNorm", nullptr, RmsNorm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"swiglu", nullptr, Swiglu, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"avgPoolGrad", nullptr, AvgPoolGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sum", nullptr, Sum, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"copy", nullptr, Copy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"leakyRelu", nullptr, LeakyRelu, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"max", nullptr, Max, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"argMax", nullptr, ArgMax, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"avgPool", nullptr, AvgPool, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"exp", nullptr, Exp, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setScratchLimit", nullptr, SetScratchLimit, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setSpin", nullptr, SetSpin, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
