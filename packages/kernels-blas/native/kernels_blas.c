// N-API addon: float32 matmul and NHWC convolution kernels over OpenBLAS for TensorFlow.js.
// Every function works in place on caller-owned Float32Arrays (views into the wasm heap or the
// cpu backend's arrays), so no tensor data is copied across the JS/C boundary. Scratch buffers
// (im2col columns, per-thread accumulators) live in C memory, never in the wasm heap, so a
// kernel never grows (and thereby detaches) the heap views it was handed.
#include <node_api.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// OpenBLAS extensions (declared here so any cblas.h alternative works).
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);

static int g_threads = 1;    // the thread budget (setThreads): OpenBLAS' pool and our own loops
static int g_blas_cur = -1;  // what OpenBLAS is currently set to

// Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, so one
// build runs well on any x86-64 machine (the addon is built on the user's machine, but images move).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

// Work (in flops) below which extra threads cost more than they save.
#define PAR_MIN_FLOPS 2e7

// ---------------------------------------------------------------------------------------------
// Small fork-join helper for the non-BLAS loops, used only when the work is large enough (see
// par_threads) for the hand-over to the other threads not to matter.
typedef void (*range_fn)(void *ctx, long begin, long end, int tid);
typedef struct {
  range_fn fn;
  void *ctx;
  long begin, end;
  int tid;
} par_job;

static void *par_entry(void *p) {
  par_job *j = (par_job *)p;
  j->fn(j->ctx, j->begin, j->end, j->tid);
  return NULL;
}

static int par_threads(long items, double work) {
  int t = g_threads;
  if (work < PAR_MIN_FLOPS) t = 1;  // below ~0.2 ms of work, thread start-up costs more than it saves
  if (t > items) t = (int)items;
  if (t < 1) t = 1;
  return t;
}

// Persistent workers for par_for: starting and joining a thread per call cost ~50 us, and a
// training step makes ~100 threaded calls (D-VAE's per-vertex products). Workers sleep on a
// condition variable between calls. One par_for at a time uses them (pool_use); a concurrent
// caller (another worker thread of the process) falls back to threads of its own.
static pthread_mutex_t pool_use = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static int pool_workers = 0;  // started: ids 1 .. pool_workers
static long pool_gen = 0;     // job generation
static long pool_seen0[64];   // generation a worker starts from
static int pool_active = 0;   // workers taking part in the current job (ids 1 .. pool_active)
static int pool_pending = 0;
static par_job pool_jobs[64];

static void *pool_main(void *arg) {
  const int id = (int)(intptr_t)arg;
  pthread_mutex_lock(&pool_mu);
  long seen = pool_seen0[id];
  for (;;) {
    while (pool_gen == seen) pthread_cond_wait(&pool_wake, &pool_mu);
    seen = pool_gen;
    if (id > pool_active) continue;
    par_job j = pool_jobs[id];
    pthread_mutex_unlock(&pool_mu);
    j.fn(j.ctx, j.begin, j.end, j.tid);
    pthread_mutex_lock(&pool_mu);
    if (--pool_pending == 0) pthread_cond_signal(&pool_done);
  }
  return NULL;
}

static void par_for_spawn(par_job *jobs, int nt) {
  pthread_t th[64];
  int started[64];
  for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, par_entry, &jobs[t]) == 0;
  jobs[0].fn(jobs[0].ctx, jobs[0].begin, jobs[0].end, 0);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(th[t], NULL);
    else jobs[t].fn(jobs[t].ctx, jobs[t].begin, jobs[t].end, t);  // could not start a thread: do its share here
  }
}

static void par_for(long items, int nt, range_fn fn, void *ctx) {
  if (nt <= 1) {
    fn(ctx, 0, items, 0);
    return;
  }
  par_job jobs[64];
  if (nt > 64) nt = 64;
  for (int t = 0; t < nt; t++) {
    jobs[t].fn = fn;
    jobs[t].ctx = ctx;
    jobs[t].begin = items * t / nt;
    jobs[t].end = items * (t + 1) / nt;
    jobs[t].tid = t;
  }
  if (pthread_mutex_trylock(&pool_use) != 0) {
    par_for_spawn(jobs, nt);
    return;
  }
  pthread_mutex_lock(&pool_mu);
  while (pool_workers < nt - 1) {
    const int id = pool_workers + 1;
    pool_seen0[id] = pool_gen;
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    const int ok = pthread_create(&th, &at, pool_main, (void *)(intptr_t)id) == 0;
    pthread_attr_destroy(&at);
    if (!ok) break;
    pool_workers = id;
  }
  const int helpers = pool_workers < nt - 1 ? pool_workers : nt - 1;
  for (int t = 1; t <= helpers; t++) pool_jobs[t] = jobs[t];
  pool_active = helpers;
  pool_pending = helpers;
  pool_gen++;
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_mu);
  fn(ctx, jobs[0].begin, jobs[0].end, 0);
  for (int t = helpers + 1; t < nt; t++) fn(ctx, jobs[t].begin, jobs[t].end, t);  // no worker for it
  pthread_mutex_lock(&pool_mu);
  while (pool_pending > 0) pthread_cond_wait(&pool_done, &pool_mu);
  pthread_mutex_unlock(&pool_mu);
  pthread_mutex_unlock(&pool_use);
}

// OpenBLAS' own pool is used only for single large products with a wide right-hand side (where
// it shares the packed operand between threads); narrow or batched products are split across our
// threads instead, each calling a single-threaded sgemm on its own rows, batches or chunks.
static void blas_threads(int n) {
  if (n != g_blas_cur) {
    openblas_set_num_threads(n);
    g_blas_cur = n;
  }
}

static int use_blas_pool(long M, long N, long K) {
  return g_threads > 1 && N >= 128 && M >= 64 && 2.0 * M * N * K >= 4 * PAR_MIN_FLOPS;
}

typedef struct {
  int ta, tb;
  long M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
} cols_ctx;

// Column blocks [begin, end) (16 columns each) of C = alpha op(A) op(B) + beta C.
static void gemm_cols(void *v, long begin, long end, int tid) {
  const cols_ctx *g = (const cols_ctx *)v;
  const long j0 = begin * 16, j1 = end * 16 < g->N ? end * 16 : g->N;
  if (j1 <= j0) return;
  const float *b = g->tb ? g->b + (size_t)j0 * g->ldb : g->b + j0;
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)g->M, (int)(j1 - j0),
              (int)g->K, g->alpha, g->a, (int)g->lda, b, (int)g->ldb, g->beta, g->c + j0, (int)g->ldc);
}

typedef struct {
  int ta, tb;
  long M, N, K, lda, ldb, ldc;
  const float *a, *b;
  float *c;
} rows_ctx;

// Rows [begin, end) of C = op(A) op(B): op(A)'s rows start at row r of A, or at column r when A is
// transposed.
static void gemm_rows(void *v, long begin, long end, int tid) {
  const rows_ctx *g = (const rows_ctx *)v;
  if (end <= begin) return;
  const float *a = g->ta ? g->a + begin : g->a + (size_t)begin * g->lda;
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)(end - begin),
              (int)g->N, (int)g->K, 1.0f, a, (int)g->lda, g->b, (int)g->ldb, 0.0f, g->c + (size_t)begin * g->ldc,
              (int)g->ldc);
}

// C[M,N] = op(A) op(B) (beta 0), threaded by whichever scheme suits the shape.
static void gemm(int ta, int tb, long M, long N, long K, const float *a, long lda, const float *b, long ldb, float *c,
                 long ldc) {
  if (M <= 0 || N <= 0) return;
  const double flops = 2.0 * M * N * K;
  rows_ctx g = {ta, tb, M, N, K, lda, ldb, ldc, a, b, c};
  if (use_blas_pool(M, N, K)) {
    blas_threads(g_threads);
    gemm_rows(&g, 0, M, 0);
    return;
  }
  blas_threads(1);
  if (g_threads > 1 && M < 128 && N >= 128 && flops >= PAR_MIN_FLOPS / 2) {
    // few rows, wide: split the columns (each thread packs only its share of B)
    cols_ctx q = {ta, tb, M, N, K, lda, ldb, ldc, 1.0f, 0.0f, a, b, c};
    const long blocks = (N + 15) / 16;
    int nc = g_threads;
    if (nc > blocks / 4) nc = (int)(blocks / 4);
    par_for(blocks, nc < 1 ? 1 : nc, gemm_cols, &q);
    return;
  }
  int nt = par_threads(M / 16, flops);  // at least 16 rows per thread
  par_for(M, nt, gemm_rows, &g);
}

// ---------------------------------------------------------------------------------------------
// Argument helpers.
static napi_value throw_err(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

#define MAXARGS 16
#define GET_ARGS(n)                                                          \
  size_t argc = MAXARGS;                                                     \
  napi_value argv[MAXARGS];                                                  \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);                      \
  if (argc < (n)) return throw_err(env, "kernels_blas: too few arguments");

// A Float32Array (or null/undefined, which yields NULL and length 0).
static int get_f32(napi_env env, napi_value v, float **data, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) return 0;
  napi_typedarray_type type;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok) return 0;
  if (type != napi_float32_array) return 0;
  *data = (float *)p;
  return 1;
}

static int get_i32arr(napi_env env, napi_value v, int32_t **data, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  napi_typedarray_type type;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok) return 0;
  if (type != napi_int32_array) return 0;
  *data = (int32_t *)p;
  return 1;
}

static long get_long(napi_env env, napi_value v) {
  int64_t x = 0;
  napi_get_value_int64(env, v, &x);
  return (long)x;
}

static double get_double(napi_env env, napi_value v) {
  double x = 0;
  napi_get_value_double(env, v, &x);
  return x;
}

static int get_bool(napi_env env, napi_value v) {
  bool b = false;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    int64_t x = 0;
    napi_get_value_int64(env, v, &x);
    return x != 0;
  }
  return b;
}

#define F32(i, name)                                                            \
  float *name;                                                                  \
  size_t name##_len;                                                            \
  if (!get_f32(env, argv[i], &name, &name##_len))                               \
    return throw_err(env, "kernels_blas: argument " #name " must be a Float32Array");

// ---------------------------------------------------------------------------------------------
// Threads.
static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  long n = get_long(env, argv[0]);
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  g_threads = (int)n;
  blas_threads((int)n);
  return NULL;
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
  napi_value r;
  napi_create_int32(env, g_threads, &r);
  return r;
}

static napi_value js_config(napi_env env, napi_callback_info info) {
  napi_value r;
  const char *c = openblas_get_config();
  napi_create_string_utf8(env, c ? c : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Batched matmul: C[i] = op(A[aIdx[i]]) * op(B[bIdx[i]]), row-major, each A [M,K] (or [K,M] when
// transA), each B [K,N] (or [N,K]), each C [M,N]. aIdx/bIdx null means the identity map.
typedef struct {
  int ta, tb;
  long M, N, K;
  const float *a, *b;
  float *c;
  const int32_t *ai, *bi;
} bmm_ctx;

static void bmm_range(void *v, long begin, long end, int tid) {
  const bmm_ctx *g = (const bmm_ctx *)v;
  const size_t sa = (size_t)g->M * g->K, sb = (size_t)g->K * g->N, sc = (size_t)g->M * g->N;
  for (long i = begin; i < end; i++) {
    const size_t ia = g->ai ? (size_t)g->ai[i] : (size_t)i, ib = g->bi ? (size_t)g->bi[i] : (size_t)i;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)g->M,
                (int)g->N, (int)g->K, 1.0f, g->a + ia * sa, g->ta ? (int)g->M : (int)g->K, g->b + ib * sb,
                g->tb ? (int)g->K : (int)g->N, 0.0f, g->c + (size_t)i * sc, (int)g->N);
  }
}

// bmm(a, b, c, batch, M, N, K, transA, transB, aIdx, bIdx)
static napi_value js_bmm(napi_env env, napi_callback_info info) {
  GET_ARGS(11);
  F32(0, a);
  F32(1, b);
  F32(2, c);
  long batch = get_long(env, argv[3]), M = get_long(env, argv[4]), N = get_long(env, argv[5]),
       K = get_long(env, argv[6]);
  int ta = get_bool(env, argv[7]), tb = get_bool(env, argv[8]);
  int32_t *ai, *bi;
  size_t ail, bil;
  if (!get_i32arr(env, argv[9], &ai, &ail) || !get_i32arr(env, argv[10], &bi, &bil))
    return throw_err(env, "kernels_blas: batch index maps must be Int32Arrays");
  if (batch <= 0 || M <= 0 || N <= 0) return NULL;
  if ((ai && (long)ail < batch) || (bi && (long)bil < batch)) return throw_err(env, "kernels_blas: short batch map");
  if ((size_t)batch * M * N > c_len) return throw_err(env, "kernels_blas: output too small");
  if (K <= 0) {
    memset(c, 0, sizeof(float) * batch * M * N);
    return NULL;
  }
  const size_t sa = (size_t)M * K, sb = (size_t)K * N;
  for (long i = 0; i < batch; i++) {
    const size_t ia = ai ? (size_t)ai[i] : (size_t)i, ib = bi ? (size_t)bi[i] : (size_t)i;
    if ((ia + 1) * sa > a_len || (ib + 1) * sb > b_len) return throw_err(env, "kernels_blas: input too small");
  }
  if (batch == 1) {
    gemm(ta, tb, M, N, K, a + (ai ? (size_t)ai[0] * sa : 0), ta ? M : K, b + (bi ? (size_t)bi[0] * sb : 0), tb ? K : N, c,
         N);
    return NULL;
  }
  bmm_ctx g = {ta, tb, M, N, K, a, b, c, ai, bi};
  const double per = 2.0 * M * N * K;
  if (use_blas_pool(M, N, K)) {
    // Each product is big enough to thread on its own.
    blas_threads(g_threads);
    bmm_range(&g, 0, batch, 0);
  } else {
    blas_threads(1);
    par_for(batch, par_threads(batch, per * batch), bmm_range, &g);
  }
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Fused epilogue, in place on y (total elements, last dim n): y = act(y + bias).
// Operand modes: 0 none, 1 scalar, 2 per column (length n), 3 full (length total).
// Activations: 0 linear, 1 relu, 2 relu6, 3 elu, 4 leakyrelu(alpha), 5 prelu(weights), 6 sigmoid.
static inline float operand(const float *v, int mode, size_t i, size_t col) {
  return mode == 1 ? v[0] : mode == 2 ? v[col] : v[i];
}

// epilogue(y, n, bias, biasMode, act, alpha, prelu, preluMode)
HOT static napi_value js_epilogue(napi_env env, napi_callback_info info) {
  GET_ARGS(8);
  F32(0, y);
  long n = get_long(env, argv[1]);
  F32(2, bias);
  int bmode = (int)get_long(env, argv[3]);
  int act = (int)get_long(env, argv[4]);
  float alpha = (float)get_double(env, argv[5]);
  F32(6, pw);
  int pmode = (int)get_long(env, argv[7]);
  if (n <= 0) return NULL;
  size_t total = y_len;
  if (!bias) bmode = 0;
  if (!pw) pmode = 0;
  if ((bmode == 2 && (long)bias_len < n) || (bmode == 3 && bias_len < total) || (bmode == 1 && bias_len < 1) ||
      (pmode == 2 && (long)pw_len < n) || (pmode == 3 && pw_len < total) || (pmode == 1 && pw_len < 1))
    return throw_err(env, "kernels_blas: epilogue operand too small");
  if (act == 5 && pmode == 0) return throw_err(env, "kernels_blas: prelu needs weights");
  for (size_t r = 0; r < total; r += (size_t)n) {
    float *row = y + r;
    if (bmode == 2) {
      for (long j = 0; j < n; j++) row[j] += bias[j];
    } else if (bmode == 1) {
      const float bv = bias[0];
      for (long j = 0; j < n; j++) row[j] += bv;
    } else if (bmode == 3) {
      for (long j = 0; j < n; j++) row[j] += bias[r + j];
    }
    switch (act) {
      case 0:
        break;
      case 1:
        for (long j = 0; j < n; j++) row[j] = row[j] < 0.0f ? 0.0f : row[j];
        break;
      case 2:
        for (long j = 0; j < n; j++) row[j] = row[j] < 0.0f ? 0.0f : (row[j] > 6.0f ? 6.0f : row[j]);
        break;
      case 3:
        for (long j = 0; j < n; j++) row[j] = row[j] >= 0.0f ? row[j] : (float)(exp((double)row[j]) - 1.0);
        break;
      case 4:
        for (long j = 0; j < n; j++) row[j] = row[j] < 0.0f ? alpha * row[j] : row[j];
        break;
      case 5:
        for (long j = 0; j < n; j++) {
          const float a = operand(pw, pmode, r + j, (size_t)j);
          row[j] = row[j] < 0.0f ? a * row[j] : row[j];
        }
        break;
      case 6:
        for (long j = 0; j < n; j++) row[j] = (float)(1.0 / (1.0 + exp(-(double)row[j])));
        break;
      default:
        return throw_err(env, "kernels_blas: unknown activation");
    }
  }
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Convolution geometry (NHWC input [N,H,W,C], filter [FH,FW,C,CO] or depthwise [FH,FW,C,MULT],
// output [N,OH,OW,CO]). Passed from JS as an Int32Array in this order.
typedef struct {
  long N, H, W, C, OH, OW, CO, FH, FW, SH, SW, DH, DW, PT, PL;
} conv_p;

static int read_conv(napi_env env, napi_value v, conv_p *q) {
  int32_t *p;
  size_t len;
  if (!get_i32arr(env, v, &p, &len) || !p || len < 15) return 0;
  q->N = p[0], q->H = p[1], q->W = p[2], q->C = p[3], q->OH = p[4], q->OW = p[5], q->CO = p[6];
  q->FH = p[7], q->FW = p[8], q->SH = p[9], q->SW = p[10], q->DH = p[11], q->DW = p[12], q->PT = p[13], q->PL = p[14];
  if (q->N < 0 || q->H < 0 || q->W < 0 || q->C < 0 || q->OH < 0 || q->OW < 0 || q->CO < 0 || q->FH < 1 || q->FW < 1 ||
      q->SH < 1 || q->SW < 1 || q->DH < 1 || q->DW < 1)
    return 0;
  return 1;
}

static int is_pointwise(const conv_p *q) {
  return q->FH == 1 && q->FW == 1 && q->SH == 1 && q->SW == 1 && q->PT == 0 && q->PL == 0 && q->OH == q->H &&
         q->OW == q->W;
}

typedef struct {
  const conv_p *q;
  const float *x;
  float *buf;
  long p0;
} im2col_ctx;

// Columns for output pixels [p0+begin, p0+end): row i holds the receptive field of pixel p0+i in
// (kh, kw, c) order, zeros where it falls in the padding.
static void im2col_range(void *vctx, long begin, long end, int tid) {
  const im2col_ctx *cx = (const im2col_ctx *)vctx;
  const conv_p *q = cx->q;
  const long K = q->FH * q->FW * q->C, C = q->C, FWC = q->FW * q->C;
  for (long i = begin; i < end; i++) {
    const long p = cx->p0 + i;
    const long n = p / (q->OH * q->OW), rem = p % (q->OH * q->OW), oh = rem / q->OW, ow = rem % q->OW;
    float *dst = cx->buf + (size_t)i * K;
    const float *xn = cx->x + (size_t)n * q->H * q->W * C;
    const long ih0 = oh * q->SH - q->PT, iw0 = ow * q->SW - q->PL;
    for (long kh = 0; kh < q->FH; kh++) {
      const long ih = ih0 + kh * q->DH;
      float *d = dst + kh * FWC;
      if (ih < 0 || ih >= q->H) {
        memset(d, 0, sizeof(float) * FWC);
        continue;
      }
      const float *xr = xn + (size_t)ih * q->W * C;
      if (q->DW == 1 && iw0 >= 0 && iw0 + q->FW <= q->W) {
        memcpy(d, xr + iw0 * C, sizeof(float) * FWC);
      } else {
        for (long kw = 0; kw < q->FW; kw++) {
          const long iw = iw0 + kw * q->DW;
          if (iw < 0 || iw >= q->W) memset(d + kw * C, 0, sizeof(float) * C);
          else memcpy(d + kw * C, xr + iw * C, sizeof(float) * C);
        }
      }
    }
  }
}

// Adds the columns of pixels [p0, p0+rows) back into dx (the transpose of im2col).
HOT static void col2im_add(const conv_p *q, const float *buf, float *dx, long p0, long rows) {
  const long K = q->FH * q->FW * q->C, C = q->C, FWC = q->FW * q->C;
  for (long i = 0; i < rows; i++) {
    const long p = p0 + i;
    const long n = p / (q->OH * q->OW), rem = p % (q->OH * q->OW), oh = rem / q->OW, ow = rem % q->OW;
    const float *src = buf + (size_t)i * K;
    float *xn = dx + (size_t)n * q->H * q->W * C;
    const long ih0 = oh * q->SH - q->PT, iw0 = ow * q->SW - q->PL;
    for (long kh = 0; kh < q->FH; kh++) {
      const long ih = ih0 + kh * q->DH;
      if (ih < 0 || ih >= q->H) continue;
      const float *s = src + kh * FWC;
      float *xr = xn + (size_t)ih * q->W * C;
      if (q->DW == 1 && iw0 >= 0 && iw0 + q->FW <= q->W) {
        float *d = xr + iw0 * C;
        for (long j = 0; j < FWC; j++) d[j] += s[j];
      } else {
        for (long kw = 0; kw < q->FW; kw++) {
          const long iw = iw0 + kw * q->DW;
          if (iw < 0 || iw >= q->W) continue;
          float *d = xr + iw * C;
          const float *sk = s + kw * C;
          for (long j = 0; j < C; j++) d[j] += sk[j];
        }
      }
    }
  }
}

#define CONV_SIZES_OK(q, xl, wl, yl)                                                                       \
  ((size_t)((q).N * (q).H * (q).W * (q).C) <= (xl) && (size_t)((q).FH * (q).FW * (q).C * (q).CO) <= (wl) && \
   (size_t)((q).N * (q).OH * (q).OW * (q).CO) <= (yl))

// Convolutions run in chunks of R output pixels (rows of the im2col matrix). Chunks are spread over
// our threads, each with its own column buffer and a single-threaded sgemm.
typedef struct {
  const conv_p *q;
  const float *x, *w, *dy;
  float *y;       // forward output / input gradient
  float *bufs;    // per-thread column buffers, R*K floats each
  double *accs;   // per-thread filter-gradient accumulators (K*CO doubles each)
  float *parts;   // per-thread filter-gradient chunk results (K*CO floats each)
  long P, K, R;
} chunk_ctx;

static void conv_fwd_chunks(void *v, long begin, long end, int tid) {
  const chunk_ctx *cx = (const chunk_ctx *)v;
  const conv_p *q = cx->q;
  float *buf = cx->bufs + (size_t)tid * cx->R * cx->K;
  for (long ch = begin; ch < end; ch++) {
    const long p0 = ch * cx->R, r = cx->P - p0 < cx->R ? cx->P - p0 : cx->R;
    im2col_ctx ic = {q, cx->x, buf, p0};
    im2col_range(&ic, 0, r, tid);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)q->CO, (int)cx->K, 1.0f, buf, (int)cx->K, cx->w,
                (int)q->CO, 0.0f, cx->y + (size_t)p0 * q->CO, (int)q->CO);
  }
}

// Input gradient over whole images [begin, end): chunks of one image never touch another's rows.
static void conv_bpi_images(void *v, long begin, long end, int tid) {
  const chunk_ctx *cx = (const chunk_ctx *)v;
  const conv_p *q = cx->q;
  float *buf = cx->bufs + (size_t)tid * cx->R * cx->K;
  const long per = q->OH * q->OW;
  for (long p0 = begin * per; p0 < end * per; p0 += cx->R) {
    const long r = end * per - p0 < cx->R ? end * per - p0 : cx->R;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cx->K, (int)q->CO, 1.0f,
                cx->dy + (size_t)p0 * q->CO, (int)q->CO, cx->w, (int)q->CO, 0.0f, buf, (int)cx->K);
    col2im_add(q, buf, cx->y, p0, r);
  }
}

static void conv_bpf_chunks(void *v, long begin, long end, int tid) {
  const chunk_ctx *cx = (const chunk_ctx *)v;
  const conv_p *q = cx->q;
  const size_t wsize = (size_t)cx->K * q->CO;
  float *buf = cx->bufs ? cx->bufs + (size_t)tid * cx->R * cx->K : NULL;
  float *part = cx->parts + (size_t)tid * wsize;
  double *acc = cx->accs + (size_t)tid * wsize;
  for (long ch = begin; ch < end; ch++) {
    const long p0 = ch * cx->R, r = cx->P - p0 < cx->R ? cx->P - p0 : cx->R;
    const float *cols = cx->x + (size_t)p0 * cx->K;  // pointwise: x itself is the column matrix
    if (buf) {
      im2col_ctx ic = {q, cx->x, buf, p0};
      im2col_range(&ic, 0, r, tid);
      cols = buf;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cx->K, (int)q->CO, (int)r, 1.0f, cols, (int)cx->K,
                cx->dy + (size_t)p0 * q->CO, (int)q->CO, 0.0f, part, (int)q->CO);
    for (size_t j = 0; j < wsize; j++) acc[j] += part[j];
  }
}

// Chunk rows: enough for sgemm to run well, few enough for the columns to stay in L2 (~1 MiB),
// and at least one chunk per thread.
static long chunk_rows(long P, long K, int nt) {
  long r = (1L << 18) / (K > 0 ? K : 1);
  if (r < 64) r = 64;
  const long even = (P + nt - 1) / nt;
  if (r > even) r = even;
  if (r < 1) r = 1;
  return r;
}

// conv2d(x, w, y, params): y = conv(x, w)
static napi_value js_conv2d(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, x);
  F32(1, w);
  F32(2, y);
  conv_p q;
  if (!read_conv(env, argv[3], &q)) return throw_err(env, "kernels_blas: bad conv params");
  if (!CONV_SIZES_OK(q, x_len, w_len, y_len)) return throw_err(env, "kernels_blas: conv2d buffer too small");
  const long P = q.N * q.OH * q.OW, K = q.FH * q.FW * q.C;
  if (P == 0 || q.CO == 0) return NULL;
  if (K == 0) {
    memset(y, 0, sizeof(float) * P * q.CO);
    return NULL;
  }
  if (is_pointwise(&q)) {
    gemm(0, 0, P, q.CO, K, x, K, w, q.CO, y, q.CO);
    return NULL;
  }
  const int nt = par_threads(P / 64, 2.0 * P * K * q.CO);
  const long R = chunk_rows(P, K, nt), nch = (P + R - 1) / R;
  float *bufs = (float *)malloc(sizeof(float) * R * K * nt);
  if (!bufs) return throw_err(env, "kernels_blas: out of memory");
  chunk_ctx cx = {&q, x, w, NULL, y, bufs, NULL, NULL, P, K, R};
  blas_threads(1);
  par_for(nch, nt, conv_fwd_chunks, &cx);
  free(bufs);
  return NULL;
}

// conv2dBackpropInput(dy, w, dx, params): dx = col2im(dy * w^T)
static napi_value js_conv2d_bp_input(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, dy);
  F32(1, w);
  F32(2, dx);
  conv_p q;
  if (!read_conv(env, argv[3], &q)) return throw_err(env, "kernels_blas: bad conv params");
  if (!CONV_SIZES_OK(q, dx_len, w_len, dy_len)) return throw_err(env, "kernels_blas: conv2d buffer too small");
  const long P = q.N * q.OH * q.OW, K = q.FH * q.FW * q.C;
  const size_t xsize = (size_t)q.N * q.H * q.W * q.C;
  if (xsize == 0) return NULL;
  if (P == 0 || q.CO == 0 || K == 0) {
    memset(dx, 0, sizeof(float) * xsize);
    return NULL;
  }
  if (is_pointwise(&q)) {
    gemm(0, 1, P, q.C, q.CO, dy, q.CO, w, q.CO, dx, q.C);
    return NULL;
  }
  memset(dx, 0, sizeof(float) * xsize);
  const int nt = par_threads(q.N, 2.0 * P * K * q.CO);
  const long R = chunk_rows(P, K, 1);
  float *bufs = (float *)malloc(sizeof(float) * R * K * nt);
  if (!bufs) return throw_err(env, "kernels_blas: out of memory");
  chunk_ctx cx = {&q, NULL, w, dy, dx, bufs, NULL, NULL, P, K, R};
  blas_threads(1);
  par_for(q.N, nt, conv_bpi_images, &cx);
  free(bufs);
  return NULL;
}

// conv2dBackpropFilter(x, dy, dw, params): dw = im2col(x)^T * dy, chunk results summed in double so
// the reduction over all N*OH*OW pixels keeps float32 accuracy.
static napi_value js_conv2d_bp_filter(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, x);
  F32(1, dy);
  F32(2, dw);
  conv_p q;
  if (!read_conv(env, argv[3], &q)) return throw_err(env, "kernels_blas: bad conv params");
  if (!CONV_SIZES_OK(q, x_len, dw_len, dy_len)) return throw_err(env, "kernels_blas: conv2d buffer too small");
  const long P = q.N * q.OH * q.OW, K = q.FH * q.FW * q.C;
  const size_t wsize = (size_t)K * q.CO;
  if (wsize == 0) return NULL;
  if (P == 0) {
    memset(dw, 0, sizeof(float) * wsize);
    return NULL;
  }
  const int pw = is_pointwise(&q);
  const int nt = par_threads(P / 256, 2.0 * P * K * q.CO);
  long R = pw ? 2048 : chunk_rows(P, K, nt);
  if (R > (P + nt - 1) / nt) R = (P + nt - 1) / nt;
  const long nch = (P + R - 1) / R;
  float *bufs = pw ? NULL : (float *)malloc(sizeof(float) * R * K * nt);
  float *parts = (float *)malloc(sizeof(float) * wsize * nt);
  double *accs = (double *)calloc(wsize * nt, sizeof(double));
  if ((!pw && !bufs) || !parts || !accs) {
    free(bufs);
    free(parts);
    free(accs);
    return throw_err(env, "kernels_blas: out of memory");
  }
  chunk_ctx cx = {&q, x, NULL, dy, NULL, bufs, accs, parts, P, K, R};
  blas_threads(1);
  par_for(nch, nt, conv_bpf_chunks, &cx);
  for (size_t j = 0; j < wsize; j++) {
    double s = 0;
    for (int t = 0; t < nt; t++) s += accs[(size_t)t * wsize + j];
    dw[j] = (float)s;
  }
  free(bufs);
  free(parts);
  free(accs);
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Depthwise convolution: filter [FH,FW,C,M], output channel c*M+m. CO = C*M.
typedef struct {
  const conv_p *q;
  const float *a, *b;
  float *out;
  double *acc;  // per-thread accumulators (filter gradient)
  float *part;  // per-thread row partial sums (filter gradient)
  long M;
} dw_ctx;

// The loops below work on blocks of CB channels with the block's accumulators in registers
// (a fixed-size inner loop the compiler unrolls and vectorises); the channel multiplier M > 1
// takes a plain loop. Valid filter taps are found once per output position, not tested per tap.
#define CB 32
// 16-float vectors (one AVX-512 register, two AVX2 or four SSE registers, as the clone allows);
// the unaligned, aliasing-safe type is for loads and stores from tensor memory.
typedef float vf16 __attribute__((vector_size(64)));
typedef float vf16u __attribute__((vector_size(64), aligned(4), may_alias));
#define VLOAD(p) (*(const vf16u *)(p))
#define VSTORE(p, v) (*(vf16u *)(p) = (v))
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf8u __attribute__((vector_size(32), aligned(4), may_alias));
#define VLOAD8(p) (*(const vf8u *)(p))

// out[c] = sum over taps t of xs[t][c] * ws[t][c], for c < C: blocks of 32 channels with the taps
// alternating between two accumulator pairs (four independent FMA chains), then 16, 8, then the rest.
HOT static void dot_taps(float *restrict out, const float *const *xs, const float *const *ws, long nt, long C) {
  long c0 = 0;
  for (; c0 + 32 <= C; c0 += 32) {
    vf16 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    long t = 0;
    for (; t + 1 < nt; t += 2) {
      const float *x = xs[t] + c0, *w = ws[t] + c0, *y = xs[t + 1] + c0, *v = ws[t + 1] + c0;
      a0 += VLOAD(x) * VLOAD(w);
      a1 += VLOAD(x + 16) * VLOAD(w + 16);
      b0 += VLOAD(y) * VLOAD(v);
      b1 += VLOAD(y + 16) * VLOAD(v + 16);
    }
    if (t < nt) {
      const float *x = xs[t] + c0, *w = ws[t] + c0;
      a0 += VLOAD(x) * VLOAD(w);
      a1 += VLOAD(x + 16) * VLOAD(w + 16);
    }
    VSTORE(out + c0, a0 + b0);
    VSTORE(out + c0 + 16, a1 + b1);
  }
  for (; c0 + 16 <= C; c0 += 16) {
    vf16 a0 = {0}, b0 = {0};
    long t = 0;
    for (; t + 1 < nt; t += 2) {
      a0 += VLOAD(xs[t] + c0) * VLOAD(ws[t] + c0);
      b0 += VLOAD(xs[t + 1] + c0) * VLOAD(ws[t + 1] + c0);
    }
    if (t < nt) a0 += VLOAD(xs[t] + c0) * VLOAD(ws[t] + c0);
    VSTORE(out + c0, a0 + b0);
  }
  for (; c0 + 8 <= C; c0 += 8) {
    vf8 a0 = {0}, b0 = {0};
    long t = 0;
    for (; t + 1 < nt; t += 2) {
      a0 += VLOAD8(xs[t] + c0) * VLOAD8(ws[t] + c0);
      b0 += VLOAD8(xs[t + 1] + c0) * VLOAD8(ws[t + 1] + c0);
    }
    if (t < nt) a0 += VLOAD8(xs[t] + c0) * VLOAD8(ws[t] + c0);
    *(vf8u *)(out + c0) = a0 + b0;
  }
  if (c0 < C) {
    // Fewer than 8 channels left: channels innermost, so each tap's products are independent
    // (a per-channel loop over taps would be one long chain of dependent adds).
    const long tl = C - c0;
    float acc[8] = {0};
    for (long t = 0; t < nt; t++) {
      const float *x = xs[t] + c0, *w = ws[t] + c0;
      for (long j = 0; j < tl; j++) acc[j] += x[j] * w[j];
    }
    for (long j = 0; j < tl; j++) out[c0 + j] = acc[j];
  }
}

// Taps [lo, hi) of a filter dimension that land inside the input for output position o.
static inline void tap_range(long o, long S, long P, long D, long F, long In, long *lo, long *hi) {
  const long base = o * S - P;  // input index of tap 0
  long a = 0, b = F;
  while (a < F && base + a * D < 0) a++;
  while (b > a && base + (b - 1) * D >= In) b--;
  *lo = a;
  *hi = b;
}

// Forward over output rows [begin,end) of (n, oh).
HOT static void dw_fwd_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M;
  for (long row = begin; row < end; row++) {
    const long n = row / q->OH, oh = row % q->OH;
    const float *xn = cx->a + (size_t)n * q->H * q->W * C;
    long kh0, kh1;
    tap_range(oh, q->SH, q->PT, q->DH, q->FH, q->H, &kh0, &kh1);
    for (long ow = 0; ow < q->OW; ow++) {
      float *restrict o = cx->out + ((size_t)row * q->OW + ow) * CO;
      long kw0, kw1;
      tap_range(ow, q->SW, q->PL, q->DW, q->FW, q->W, &kw0, &kw1);
      const long ih0 = oh * q->SH - q->PT, iw0 = ow * q->SW - q->PL;
      if (M == 1) {
        // Taps as a flat list so the loop can alternate between two accumulator sets (more
        // independent FMA chains than one set can offer).
        const float *xs[4096];
        const float *ws[4096];
        long nt = 0;
        for (long kh = kh0; kh < kh1; kh++)
          for (long kw = kw0; kw < kw1; kw++) {
            xs[nt] = xn + ((size_t)(ih0 + kh * q->DH) * q->W + iw0 + kw * q->DW) * C;
            ws[nt++] = cx->b + (size_t)(kh * q->FW + kw) * C;
          }
        dot_taps(o, xs, ws, nt, C);
      } else {
        memset(o, 0, sizeof(float) * CO);
        for (long kh = kh0; kh < kh1; kh++)
          for (long kw = kw0; kw < kw1; kw++) {
            const float *restrict xp = xn + ((size_t)(ih0 + kh * q->DH) * q->W + iw0 + kw * q->DW) * C;
            const float *restrict wp = cx->b + (size_t)(kh * q->FW + kw) * CO;
            for (long c = 0; c < C; c++)
              for (long m = 0; m < M; m++) o[c * M + m] += xp[c] * wp[c * M + m];
          }
      }
    }
  }
}

// Input gradient, gathered per input row [begin,end) of (n, ih) so threads never write the same row.
HOT static void dw_bpi_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M;
  long khs[64], ohs[64], kws[64], ows[64];  // contributing (tap, output) pairs; F <= 64 checked by caller
  for (long row = begin; row < end; row++) {
    const long n = row / q->H, ih = row % q->H;
    const float *dyn = cx->a + (size_t)n * q->OH * q->OW * CO;
    long nh = 0;
    for (long kh = 0; kh < q->FH; kh++) {
      const long t = ih + q->PT - kh * q->DH;
      if (t < 0 || t % q->SH || t / q->SH >= q->OH) continue;
      khs[nh] = kh;
      ohs[nh++] = t / q->SH;
    }
    for (long iw = 0; iw < q->W; iw++) {
      float *restrict d = cx->out + ((size_t)row * q->W + iw) * C;
      long nw = 0;
      for (long kw = 0; kw < q->FW; kw++) {
        const long u = iw + q->PL - kw * q->DW;
        if (u < 0 || u % q->SW || u / q->SW >= q->OW) continue;
        kws[nw] = kw;
        ows[nw++] = u / q->SW;
      }
      if (M == 1) {
        const float *gs[4096];
        const float *ws[4096];
        long nt = 0;
        for (long i = 0; i < nh; i++)
          for (long k = 0; k < nw; k++) {
            gs[nt] = dyn + ((size_t)ohs[i] * q->OW + ows[k]) * C;
            ws[nt++] = cx->b + (size_t)(khs[i] * q->FW + kws[k]) * C;
          }
        dot_taps(d, gs, ws, nt, C);
      } else {
        memset(d, 0, sizeof(float) * C);
        for (long i = 0; i < nh; i++)
          for (long k = 0; k < nw; k++) {
            const float *restrict g = dyn + ((size_t)ohs[i] * q->OW + ows[k]) * CO;
            const float *restrict wp = cx->b + (size_t)(khs[i] * q->FW + kws[k]) * CO;
            for (long c = 0; c < C; c++) {
              float s = 0.0f;
              for (long m = 0; m < M; m++) s += g[c * M + m] * wp[c * M + m];
              d[c] += s;
            }
          }
      }
    }
  }
}

// Filter gradient over output rows [begin,end): for each (n, oh) row and tap, the products along the
// row are summed in registers, the row total goes to a float partial, and each row's partials are
// added to this thread's double accumulator.
HOT static void dw_bpf_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M, T = q->FH * q->FW;
  double *acc = cx->acc + (size_t)tid * T * CO;
  float *part = cx->part + (size_t)tid * (T * CO + C);  // each thread: T*CO partials, then C scratch
  float *tmp = part + T * CO;
  const float *xs[4096], *gs[4096];
  for (long row = begin; row < end; row++) {
    const long n = row / q->OH, oh = row % q->OH;
    const float *xn = cx->a + (size_t)n * q->H * q->W * C;
    const float *gr = cx->b + (size_t)row * q->OW * CO;
    memset(part, 0, sizeof(float) * T * CO);
    long kh0, kh1;
    tap_range(oh, q->SH, q->PT, q->DH, q->FH, q->H, &kh0, &kh1);
    for (long kh = kh0; kh < kh1; kh++) {
      const float *xr = xn + (size_t)(oh * q->SH - q->PT + kh * q->DH) * q->W * C;
      for (long kw = 0; kw < q->FW; kw++) {
        // Output columns whose tap kw lands inside the input.
        long ow0 = 0, ow1 = q->OW;
        while (ow0 < ow1 && ow0 * q->SW - q->PL + kw * q->DW < 0) ow0++;
        while (ow1 > ow0 && (ow1 - 1) * q->SW - q->PL + kw * q->DW >= q->W) ow1--;
        float *restrict pp = part + (size_t)(kh * q->FW + kw) * CO;
        const long xoff = kw * q->DW - q->PL;
        if (M == 1) {
          // Per channel, a dot product along the row: the same kernel as the forward taps.
          for (long g0 = ow0; g0 < ow1; g0 += 4096) {
            const long g1 = ow1 - g0 > 4096 ? g0 + 4096 : ow1;
            for (long ow = g0; ow < g1; ow++) {
              xs[ow - g0] = xr + (ow * q->SW + xoff) * C;
              gs[ow - g0] = gr + ow * C;
            }
            dot_taps(tmp, xs, gs, g1 - g0, C);
            for (long c = 0; c < C; c++) pp[c] += tmp[c];
          }
        } else {
          for (long ow = ow0; ow < ow1; ow++) {
            const float *restrict xp = xr + (ow * q->SW + xoff) * C;
            const float *restrict g = gr + ow * CO;
            for (long c = 0; c < C; c++)
              for (long m = 0; m < M; m++) pp[c * M + m] += xp[c] * g[c * M + m];
          }
        }
      }
    }
    for (long j = 0; j < T * CO; j++) acc[j] += part[j];
  }
}

static int read_dw(napi_env env, napi_value *argv, conv_p *q, long *M) {
  if (!read_conv(env, argv[3], q)) return 0;
  if (q->C <= 0 || q->CO % q->C || q->FH > 64 || q->FW > 64) return 0;
  *M = q->CO / q->C;
  return 1;
}

// depthwise(x, w, y, params)
static napi_value js_depthwise(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, x);
  F32(1, w);
  F32(2, y);
  conv_p q;
  long M;
  if (!read_dw(env, argv, &q, &M)) return throw_err(env, "kernels_blas: bad depthwise params");
  if ((size_t)(q.N * q.H * q.W * q.C) > x_len || (size_t)(q.FH * q.FW * q.CO) > w_len ||
      (size_t)(q.N * q.OH * q.OW * q.CO) > y_len)
    return throw_err(env, "kernels_blas: depthwise buffer too small");
  dw_ctx cx = {&q, x, w, y, NULL, NULL, M};
  const long rows = q.N * q.OH;
  par_for(rows, par_threads(rows, (double)rows * q.OW * q.FH * q.FW * q.CO), dw_fwd_range, &cx);
  return NULL;
}

// depthwiseBackpropInput(dy, w, dx, params)
static napi_value js_depthwise_bp_input(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, dy);
  F32(1, w);
  F32(2, dx);
  conv_p q;
  long M;
  if (!read_dw(env, argv, &q, &M)) return throw_err(env, "kernels_blas: bad depthwise params");
  if ((size_t)(q.N * q.H * q.W * q.C) > dx_len || (size_t)(q.FH * q.FW * q.CO) > w_len ||
      (size_t)(q.N * q.OH * q.OW * q.CO) > dy_len)
    return throw_err(env, "kernels_blas: depthwise buffer too small");
  dw_ctx cx = {&q, dy, w, dx, NULL, NULL, M};
  const long rows = q.N * q.H;
  par_for(rows, par_threads(rows, (double)rows * q.W * q.FH * q.FW * q.CO), dw_bpi_range, &cx);
  return NULL;
}

// depthwiseBackpropFilter(x, dy, dw, params)
static napi_value js_depthwise_bp_filter(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  F32(0, x);
  F32(1, dy);
  F32(2, dw);
  conv_p q;
  long M;
  if (!read_dw(env, argv, &q, &M)) return throw_err(env, "kernels_blas: bad depthwise params");
  const size_t wsize = (size_t)q.FH * q.FW * q.CO;
  if ((size_t)(q.N * q.H * q.W * q.C) > x_len || wsize > dw_len || (size_t)(q.N * q.OH * q.OW * q.CO) > dy_len)
    return throw_err(env, "kernels_blas: depthwise buffer too small");
  const long rows = q.N * q.OH;
  const int nt = par_threads(rows, (double)rows * q.OW * q.FH * q.FW * q.CO);
  double *acc = (double *)calloc(wsize * nt, sizeof(double));
  float *part = (float *)malloc(sizeof(float) * (wsize + q.C) * nt);
  if (!acc || !part) {
    free(acc);
    free(part);
    return throw_err(env, "kernels_blas: out of memory");
  }
  dw_ctx cx = {&q, x, dy, dw, acc, part, M};
  par_for(rows, nt, dw_bpf_range, &cx);
  free(part);
  for (size_t j = 0; j < wsize; j++) {
    double s = 0;
    for (int t = 0; t < nt; t++) s += acc[(size_t)t * wsize + j];
    dw[j] = (float)s;
  }
  free(acc);
  return NULL;
}


// ---------------------------------------------------------------------------------------------
// Plain strided sgemm with accumulation, for hand-written fused ops (forward and backward passes
// that sum weight gradients over many steps): C = alpha op(A) op(B) + beta C, row-major, with
// leading dimensions, on any Float32Arrays (subarray views select sub-matrices).
// Rows [begin, end) of C = alpha op(A) op(B) + beta C (op(A)'s rows start at column r of A when
// A is transposed).
static void gemm_rows_ab(void *v, long begin, long end, int tid) {
  const cols_ctx *g = (const cols_ctx *)v;
  if (end <= begin) return;
  const float *a = g->ta ? g->a + begin : g->a + (size_t)begin * g->lda;
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)(end - begin), (int)g->N,
              (int)g->K, g->alpha, a, (int)g->lda, g->b, (int)g->ldb, g->beta, g->c + (size_t)begin * g->ldc, (int)g->ldc);
}

// gemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  GET_ARGS(13);
  int ta = get_bool(env, argv[0]), tb = get_bool(env, argv[1]);
  long M = get_long(env, argv[2]), N = get_long(env, argv[3]), K = get_long(env, argv[4]);
  float alpha = (float)get_double(env, argv[5]);
  F32(6, a);
  long lda = get_long(env, argv[7]);
  F32(8, b);
  long ldb = get_long(env, argv[9]);
  float beta = (float)get_double(env, argv[10]);
  F32(11, c);
  long ldc = get_long(env, argv[12]);
  if (M <= 0 || N <= 0) return NULL;
  // extents of the operands as stored (rows x cols)
  long ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  if (ldc < N || (size_t)((M - 1) * ldc + N) > c_len) return throw_err(env, "kernels_blas: gemm output too small");
  if (K <= 0) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return NULL;
  }
  if (lda < ac || (size_t)((ar - 1) * lda + ac) > a_len) return throw_err(env, "kernels_blas: gemm A too small");
  if (ldb < bc || (size_t)((br - 1) * ldb + bc) > b_len) return throw_err(env, "kernels_blas: gemm B too small");
  if (use_blas_pool(M, N, K)) {
    blas_threads(g_threads);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
                a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return NULL;
  }
  blas_threads(1);
  // Few rows (D-VAE's per-step products: 32 graphs x 512-wide weights): split the columns, so each
  // thread packs only its share of B (splitting 32 rows would pack all of B twice).
  cols_ctx g = {ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, a, b, c};
  const double flops = 2.0 * M * N * K;
  if (g_threads > 1 && M >= 32 && (M >= 128 || N < 128) && flops >= PAR_MIN_FLOPS / 2) {
    // many rows (narrow host-op products, e.g. 12800 x 56): split the rows, at least 16 each
    int nr = g_threads;
    if (nr > M / 16) nr = (int)(M / 16);
    par_for(M, nr, gemm_rows_ab, &g);
    return NULL;
  }
  const long blocks = (N + 15) / 16;
  int nt = g_threads > 1 && N >= 128 && 2.0 * M * N * K >= PAR_MIN_FLOPS / 2 ? g_threads : 1;
  if (nt > blocks / 4) nt = (int)(blocks / 4);
  if (nt < 1) nt = 1;
  par_for(blocks, nt, gemm_cols, &g);
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Elementwise parts of a GRU cell and of D-VAE's gated message, for host-side fused ops (the
// gemms are separate calls). Gate order (r, z, n) as torch.nn.GRUCell.
// exp by range reduction and Cephes' degree-6 polynomial (within ~2 ulp of expf), branch-free so
// that the loops below vectorise; arguments are clamped to the finite range.
static inline float fexp(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  // round to nearest by the 1.5 * 2^23 trick (vectorises, unlike rintf)
  const float k = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = ((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &e, sizeof scale);
  return p * scale;
}
static inline float sigm(float x) { return 1.0f / (1.0f + fexp(-x)); }
// tanh: (1 - e^-2|x|) / (1 + e^-2|x|) with the sign restored; a Taylor polynomial near 0, where the
// quotient would lose relative accuracy.
static inline float ftanh(float x) {
  const float ax = fabsf(x);
  const float t = fexp(-2.0f * ax);
  const float big = (1.0f - t) / (1.0f + t);
  const float x2 = ax * ax;
  const float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  const float y = ax < 0.0625f ? small : big;
  return copysignf(y, x);
}

// One graph's row of the GRU forward; separate loops with and without a hidden input keep the
// loop bodies branch-free (restrict: lets the compiler vectorise).
HOT static void gru_row(const float *restrict gi, const float *restrict g, const float *restrict bhh,
                           const float *restrict hin, float *restrict r, float *restrict z, float *restrict nn,
                           float *restrict ghn, float *restrict h, long H) {
  if (g && hin) {
    for (long j = 0; j < H; j++) {
      const float hn = g[2 * H + j] + bhh[2 * H + j];
      const float rr = sigm(gi[j] + g[j] + bhh[j]);
      const float zz = sigm(gi[H + j] + g[H + j] + bhh[H + j]);
      const float nv = ftanh(gi[2 * H + j] + rr * hn);
      r[j] = rr;
      z[j] = zz;
      nn[j] = nv;
      ghn[j] = hn;
      h[j] = nv + zz * (hin[j] - nv);
    }
  } else {
    for (long j = 0; j < H; j++) {
      const float hn = bhh[2 * H + j];
      const float rr = sigm(gi[j] + bhh[j]);
      const float zz = sigm(gi[H + j] + bhh[H + j]);
      const float nv = ftanh(gi[2 * H + j] + rr * hn);
      r[j] = rr;
      z[j] = zz;
      nn[j] = nv;
      ghn[j] = hn;
      h[j] = nv - zz * nv;
    }
  }
}

// gruFwd(table, types, gh, bhh, hIn, r, z, nn, ghn, h, B, H)
// gi row of graph b = table[types[b]] ([nvt, 3H]); gh = hIn W_hh^T [B, 3H] without bias, or null
// when the hidden input is zero (hIn null too).
HOT static napi_value js_gru_fwd(napi_env env, napi_callback_info info) {
  GET_ARGS(12);
  F32(0, table);
  int32_t *types;
  size_t types_len;
  if (!get_i32arr(env, argv[1], &types, &types_len)) return throw_err(env, "kernels_blas: types must be an Int32Array");
  F32(2, gh);
  F32(3, bhh);
  F32(4, hin);
  F32(5, r);
  F32(6, z);
  F32(7, nn);
  F32(8, ghn);
  F32(9, h);
  long B = get_long(env, argv[10]), H = get_long(env, argv[11]);
  const size_t BH = (size_t)B * H, H3 = 3 * (size_t)H;
  if ((size_t)B > types_len || bhh_len < H3 || r_len < BH || z_len < BH || nn_len < BH || ghn_len < BH || h_len < BH ||
      (gh && gh_len < B * H3) || (hin && hin_len < BH) || (!gh) != (!hin))
    return throw_err(env, "kernels_blas: gruFwd: bad sizes");
  for (long b = 0; b < B; b++) {
    if ((size_t)(types[b] + 1) * H3 > table_len || types[b] < 0) return throw_err(env, "kernels_blas: gruFwd: type out of range");
    const size_t o = (size_t)b * H;
    gru_row(table + (size_t)types[b] * H3, gh ? gh + b * H3 : NULL, bhh, hin ? hin + o : NULL, r + o, z + o, nn + o, ghn + o,
            h + o, H);
  }
  return NULL;
}

// gruBwd(dh, hIn, r, z, nn, ghn, types, dgh, dhIn, dTable, dbhh, B, H)
// Writes dgh [B, 3H] (gradient of the hidden-side pre-activations; the input side equals it except
// for n: dgi_n = dgh_n / r, accumulated into dTable[types[b]]), dhIn = dh * z (the direct part;
// null when hIn is null), and accumulates dbhh.
HOT static napi_value js_gru_bwd(napi_env env, napi_callback_info info) {
  GET_ARGS(13);
  F32(0, dh);
  F32(1, hin);
  F32(2, r);
  F32(3, z);
  F32(4, nn);
  F32(5, ghn);
  int32_t *types;
  size_t types_len;
  if (!get_i32arr(env, argv[6], &types, &types_len)) return throw_err(env, "kernels_blas: types must be an Int32Array");
  F32(7, dgh);
  F32(8, dhin);
  F32(9, dtable);
  F32(10, dbhh);
  long B = get_long(env, argv[11]), H = get_long(env, argv[12]);
  const size_t BH = (size_t)B * H, H3 = 3 * (size_t)H;
  if ((size_t)B > types_len || dh_len < BH || r_len < BH || z_len < BH || nn_len < BH || ghn_len < BH || dgh_len < B * H3 ||
      dbhh_len < H3 || (hin && (hin_len < BH || dhin_len < BH)))
    return throw_err(env, "kernels_blas: gruBwd: bad sizes");
  for (long b = 0; b < B; b++) {
    if ((size_t)(types[b] + 1) * H3 > dtable_len || types[b] < 0) return throw_err(env, "kernels_blas: gruBwd: type out of range");
    float *dt = dtable + (size_t)types[b] * H3;
    float *g = dgh + b * H3;
    const size_t o = (size_t)b * H;
    for (long j = 0; j < H; j++) {
      const size_t i = o + j;
      const float zz = z[i], nv = nn[i], rr = r[i], d = dh[i];
      const float x = hin ? hin[i] : 0.0f;
      const float dn = d * (1.0f - zz);
      const float dz = d * (x - nv);
      if (hin) dhin[i] = d * zz;
      const float dpn = dn * (1.0f - nv * nv);
      const float dpr = dpn * ghn[i] * rr * (1.0f - rr);
      const float dpz = dz * zz * (1.0f - zz);
      g[j] = dpr;
      g[H + j] = dpz;
      g[2 * H + j] = dpn * rr;
      dt[j] += dpr;
      dt[H + j] += dpz;
      dt[2 * H + j] += dpn;
      dbhh[j] += dpr;
      dbhh[H + j] += dpz;
      dbhh[2 * H + j] += dpn * rr;
    }
  }
  return NULL;
}

// msgFwd(a, c, m, wg, bg, wm, W, v, B, H): a = h Wg[:, :H]^T and c = h Wm[:, :H]^T on entry; adds
// the vid column v (and bg), then a <- g = sigmoid(a), c <- c + vid, m = g * c.
HOT static napi_value js_msg_fwd(napi_env env, napi_callback_info info) {
  GET_ARGS(10);
  F32(0, a);
  F32(1, c);
  F32(2, m);
  F32(3, wg);
  F32(4, bg);
  F32(5, wm);
  long W = get_long(env, argv[6]), v = get_long(env, argv[7]), B = get_long(env, argv[8]), H = get_long(env, argv[9]);
  const size_t BH = (size_t)B * H;
  if (a_len < BH || c_len < BH || m_len < BH || bg_len < (size_t)H || H + v >= W || wg_len < (size_t)H * W || wm_len < (size_t)H * W)
    return throw_err(env, "kernels_blas: msgFwd: bad sizes");
  for (long b = 0; b < B; b++) {
    const size_t o = (size_t)b * H;
    for (long j = 0; j < H; j++) {
      const float g = sigm(a[o + j] + wg[j * W + H + v] + bg[j]);
      const float cc = c[o + j] + wm[j * W + H + v];
      a[o + j] = g;
      c[o + j] = cc;
      m[o + j] = g * cc;
    }
  }
  return NULL;
}

// msgBwd(dm, g, c, da, dc, dWg, dbg, dWm, W, v, B, H): da = dm c g (1-g), dc = dm g; accumulates the
// vid column v of dWg and dWm, and dbg.
HOT static napi_value js_msg_bwd(napi_env env, napi_callback_info info) {
  GET_ARGS(12);
  F32(0, dm);
  F32(1, g);
  F32(2, c);
  F32(3, da);
  F32(4, dc);
  F32(5, dwg);
  F32(6, dbg);
  F32(7, dwm);
  long W = get_long(env, argv[8]), v = get_long(env, argv[9]), B = get_long(env, argv[10]), H = get_long(env, argv[11]);
  const size_t BH = (size_t)B * H;
  if (dm_len < BH || g_len < BH || c_len < BH || da_len < BH || dc_len < BH || dbg_len < (size_t)H || H + v >= W ||
      dwg_len < (size_t)H * W || dwm_len < (size_t)H * W)
    return throw_err(env, "kernels_blas: msgBwd: bad sizes");
  for (long b = 0; b < B; b++) {
    const size_t o = (size_t)b * H;
    for (long j = 0; j < H; j++) {
      const float gg = g[o + j];
      const float x = dm[o + j] * c[o + j] * gg * (1.0f - gg);
      const float y = dm[o + j] * gg;
      da[o + j] = x;
      dc[o + j] = y;
      dwg[j * W + H + v] += x;
      dbg[j] += x;
      dwm[j * W + H + v] += y;
    }
  }
  return NULL;
}

// addRows(dst, dstRows, src, srcRows, count, width): dst row dstRows[i] += src row srcRows[i], for
// i < count (sums of gathered rows, e.g. messages into receivers).
HOT static napi_value js_add_rows(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  F32(0, dst);
  int32_t *di, *si;
  size_t dil, sil;
  if (!get_i32arr(env, argv[1], &di, &dil)) return throw_err(env, "kernels_blas: dstRows must be an Int32Array");
  F32(2, src);
  if (!get_i32arr(env, argv[3], &si, &sil)) return throw_err(env, "kernels_blas: srcRows must be an Int32Array");
  long count = get_long(env, argv[4]), w = get_long(env, argv[5]);
  if (count < 0 || (size_t)count > dil || (size_t)count > sil || w < 0) return throw_err(env, "kernels_blas: addRows: bad sizes");
  for (long i = 0; i < count; i++) {
    if (di[i] < 0 || si[i] < 0 || (size_t)(di[i] + 1) * w > dst_len || (size_t)(si[i] + 1) * w > src_len)
      return throw_err(env, "kernels_blas: addRows: row out of range");
  }
  for (long i = 0; i < count; i++) {
    float *restrict d = dst + (size_t)di[i] * w;
    const float *restrict x = src + (size_t)si[i] * w;
    for (long j = 0; j < w; j++) d[j] += x[j];
  }
  return NULL;
}

// copy2d(dst, dstOff, ldd, src, srcOff, lds, rows, cols[, alpha]): dst[dstOff + r*ldd + c] =
// alpha * src[srcOff + r*lds + c] (splitting and stacking column blocks of row-major matrices).
HOT static napi_value js_copy2d(napi_env env, napi_callback_info info) {
  GET_ARGS(8);
  const float alpha = argc > 8 ? (float)get_double(env, argv[8]) : 1.0f;
  F32(0, dst);
  long doff = get_long(env, argv[1]), ldd = get_long(env, argv[2]);
  F32(3, src);
  long soff = get_long(env, argv[4]), lds = get_long(env, argv[5]), rows = get_long(env, argv[6]), cols = get_long(env, argv[7]);
  if (rows <= 0 || cols <= 0) return NULL;
  if (doff < 0 || soff < 0 || ldd < cols || lds < cols || (size_t)(doff + (rows - 1) * ldd + cols) > dst_len ||
      (size_t)(soff + (rows - 1) * lds + cols) > src_len)
    return throw_err(env, "kernels_blas: copy2d: out of range");
  if (alpha == 1.0f) {
    for (long r = 0; r < rows; r++) memcpy(dst + doff + r * ldd, src + soff + r * lds, sizeof(float) * cols);
  } else {
    for (long r = 0; r < rows; r++) {
      float *restrict d = dst + doff + r * ldd;
      const float *restrict x = src + soff + r * lds;
      for (long c = 0; c < cols; c++) d[c] = alpha * x[c];
    }
  }
  return NULL;
}

// ewise(op, out, a, b, n): 0: out = a + b; 1: out = b > 0 ? a : 0 (relu's backward: a = dy, b =
// the activation); 2: out = a (copy); 3: out += a. Elementwise helpers for host-side fused ops (JS loops with
// data-dependent branches run at ~7 ns per element).
HOT static napi_value js_ewise(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  long op = get_long(env, argv[0]);
  F32(1, out);
  F32(2, a);
  F32(3, b);
  long n = get_long(env, argv[4]);
  if (n < 0 || (size_t)n > out_len || (size_t)n > a_len || (op != 2 && op != 3 && (size_t)n > b_len)) return throw_err(env, "kernels_blas: ewise: bad sizes");
  float *restrict o = out;
  const float *restrict x = a;
  const float *restrict y = b;
  if (op == 3) {
    float *acc = out;  // out += a (out and a distinct)
    for (long i = 0; i < n; i++) acc[i] += a[i];
  } else if (op == 0) {
    for (long i = 0; i < n; i++) o[i] = x[i] + y[i];
  } else if (op == 1) {
    for (long i = 0; i < n; i++) o[i] = y[i] > 0.0f ? x[i] : 0.0f;
  } else {
    memcpy(o, x, sizeof(float) * n);
  }
  return NULL;
}

// colSum(x, rows, cols, out, accumulate): out[c] (+)= sum over rows of x[r*cols + c], summed in
// float32 row by row (vectorised across columns).
HOT static napi_value js_col_sum(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  F32(0, x);
  long rows = get_long(env, argv[1]), cols = get_long(env, argv[2]);
  F32(3, out);
  int acc = get_bool(env, argv[4]);
  if (rows < 0 || cols < 0 || (size_t)(rows * cols) > x_len || (size_t)cols > out_len) return throw_err(env, "kernels_blas: colSum: bad sizes");
  float *restrict o = out;
  if (!acc) memset(o, 0, sizeof(float) * cols);
  for (long r = 0; r < rows; r++) {
    const float *restrict xr = x + (size_t)r * cols;
    for (long c = 0; c < cols; c++) o[c] += xr[c];
  }
  return NULL;
}

// heads(src, dst, N, rows, h, d, merge): multi-head layout change. split (merge = 0):
// dst[((s*h + j)*rows + i)*d + t] = src[(s*rows + i)*h*d + j*d + t]; merge is the inverse.
typedef struct {
  float *src, *dst;
  long rows, h, d;
  int merge;
} heads_ctx;

static void heads_range(void *v, long begin, long end, int tid) {
  const heads_ctx *q = (const heads_ctx *)v;
  const long rows = q->rows, h = q->h, d = q->d;
  const size_t dv = (size_t)h * d;
  for (long s = begin; s < end; s++)
    for (long j = 0; j < h; j++)
      for (long i = 0; i < rows; i++) {
        const size_t a = ((size_t)(s * h + j) * rows + i) * d, b = ((size_t)s * rows + i) * dv + (size_t)j * d;
        if (q->merge) memcpy(q->dst + b, q->src + a, sizeof(float) * d);
        else memcpy(q->dst + a, q->src + b, sizeof(float) * d);
      }
}

// Memory-bound loops: a second thread pays off above ~256K elements (about 0.1 ms of copying).
static int mem_threads(long items, size_t elements) {
  int t = elements >= (1u << 18) ? g_threads : 1;
  if (t > items) t = (int)items;
  return t < 1 ? 1 : t;
}

static napi_value js_heads(napi_env env, napi_callback_info info) {
  GET_ARGS(7);
  F32(0, src);
  F32(1, dst);
  long N = get_long(env, argv[2]), rows = get_long(env, argv[3]), h = get_long(env, argv[4]), d = get_long(env, argv[5]);
  int merge = get_bool(env, argv[6]);
  const size_t total = (size_t)N * rows * h * d;
  if (N < 0 || rows < 0 || h < 0 || d < 0 || total > src_len || total > dst_len) return throw_err(env, "kernels_blas: heads: bad sizes");
  heads_ctx q = {src, dst, rows, h, d, merge};
  par_for(N, mem_threads(N, total), heads_range, &q);
  return NULL;
}

// pairTanhMean(g, d, w, out, nG, nD, k): out[i] = mean over j < nD of sum_c tanh(g[i,c] + d[j,c]) w[c]
// (a tanh MLP head scored for every pair of rows and averaged over the second set, without
// materialising the nG x nD x k pre-activations).
HOT static napi_value js_pair_tanh_mean(napi_env env, napi_callback_info info) {
  GET_ARGS(7);
  F32(0, g);
  F32(1, d);
  F32(2, w);
  F32(3, out);
  long nG = get_long(env, argv[4]), nD = get_long(env, argv[5]), k = get_long(env, argv[6]);
  if (nG < 0 || nD <= 0 || k < 0 || (size_t)(nG * k) > g_len || (size_t)(nD * k) > d_len || (size_t)k > w_len || (size_t)nG > out_len)
    return throw_err(env, "kernels_blas: pairTanhMean: bad sizes");
  float *t = (float *)malloc(sizeof(float) * (k > 0 ? k : 1));
  if (!t) return throw_err(env, "kernels_blas: out of memory");
  for (long i = 0; i < nG; i++) {
    double acc = 0;
    const float *restrict gi = g + (size_t)i * k;
    for (long j = 0; j < nD; j++) {
      const float *restrict dj = d + (size_t)j * k;
      for (long c = 0; c < k; c++) t[c] = ftanh(gi[c] + dj[c]) * w[c];
      float s = 0;
      for (long c = 0; c < k; c++) s += t[c];
      acc += s;
    }
    out[i] = (float)(acc / nD);
  }
  free(t);
  return NULL;
}

// softmaxRows(x, blocks, rows, cols, mask, heads): in place, row-wise softmax of x [blocks, rows,
// cols]; mask (or null) [blocks / heads, cols] 0/1 excludes keys (weight exactly 0) of block b by
// row b / heads of the mask (the same key mask for every head and query of a set).
typedef struct {
  float *x;
  const float *mask;
  long rows, cols, heads;
} smax_ctx;

// Per block: row maxima subtracted row by row, then exp over the whole block as one flat loop (rows
// of 20 keys left most of each row to the scalar remainder of a per-row loop), then the mask and
// the row sums. The same operations per element as a row-by-row pass, in the same order.
HOT static void softmax_range(void *vc, long begin, long end, int tid) {
  const smax_ctx *q = (const smax_ctx *)vc;
  const long rows = q->rows, cols = q->cols;
  const size_t blk = (size_t)rows * cols;
  for (long b = begin; b < end; b++) {
    const float *mk = q->mask ? q->mask + (size_t)(b / q->heads) * cols : NULL;
    float *restrict x = q->x + (size_t)b * blk;
    for (long r = 0; r < rows; r++) {
      float *restrict v = x + (size_t)r * cols;
      float mx = -INFINITY;
      for (long c = 0; c < cols; c++)
        if (!mk || mk[c] != 0.0f) mx = v[c] > mx ? v[c] : mx;
      for (long c = 0; c < cols; c++) v[c] -= mx;
    }
    // exp by the vectorised polynomial (masked keys: clamped, then multiplied by 0)
    for (size_t i = 0; i < blk; i++) x[i] = fexp(x[i]);
    for (long r = 0; r < rows; r++) {
      float *restrict v = x + (size_t)r * cols;
      if (mk)
        for (long c = 0; c < cols; c++) v[c] *= (mk[c] != 0.0f ? 1.0f : 0.0f);
      float sum = 0.0f;
      for (long c = 0; c < cols; c++) sum += v[c];
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      for (long c = 0; c < cols; c++) v[c] *= inv;
    }
  }
}

static napi_value js_softmax_rows(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  F32(0, x);
  long nb = get_long(env, argv[1]), rows = get_long(env, argv[2]), cols = get_long(env, argv[3]);
  F32(4, mask);
  long heads = get_long(env, argv[5]);
  if (nb < 0 || rows < 0 || cols <= 0 || heads <= 0 || (size_t)(nb * rows * cols) > x_len ||
      (mask && (size_t)(((nb + heads - 1) / heads) * cols) > mask_len))
    return throw_err(env, "kernels_blas: softmaxRows: bad sizes");
  smax_ctx q = {x, mask, rows, cols, heads};
  // exp costs ~10 flops per element: threads from ~64K elements
  par_for(nb, mem_threads(nb, (size_t)nb * rows * cols * 4), softmax_range, &q);
  return NULL;
}

// softmaxBwd(a, da, ds, n, cols): ds = a * (da - sum_c a da) per row of cols (softmax's gradient).
typedef struct {
  const float *a, *da;
  float *ds;
  long cols;
} sbwd_ctx;

HOT static void softmax_bwd_range(void *vc, long begin, long end, int tid) {
  const sbwd_ctx *q = (const sbwd_ctx *)vc;
  const long cols = q->cols;
  for (long r = begin; r < end; r++) {
    const float *restrict ar = q->a + (size_t)r * cols;
    const float *restrict dr = q->da + (size_t)r * cols;
    float *restrict sr = q->ds + (size_t)r * cols;
    float dot = 0.0f;
    for (long c = 0; c < cols; c++) dot += ar[c] * dr[c];
    for (long c = 0; c < cols; c++) sr[c] = ar[c] * (dr[c] - dot);
  }
}

static napi_value js_softmax_bwd(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  F32(0, a);
  F32(1, da);
  F32(2, ds);
  long rows = get_long(env, argv[3]), cols = get_long(env, argv[4]);
  if (rows < 0 || cols <= 0 || (size_t)(rows * cols) > a_len || (size_t)(rows * cols) > da_len || (size_t)(rows * cols) > ds_len)
    return throw_err(env, "kernels_blas: softmaxBwd: bad sizes");
  sbwd_ctx q = {a, da, ds, cols};
  par_for(rows, mem_threads(rows, (size_t)rows * cols), softmax_bwd_range, &q);
  return NULL;
}


// ---------------------------------------------------------------------------------------------
// adam(ps, gs, ms, vs, outs, scal, b1, c1, b2, c2, eps): PyTorch's Adam update (TorchAdam in
// @metad2a/meta-training) over many parameter tensors in one call, m and v in place:
//   m = m b1 + g c1;  v = v b2 + (g g) c2;  out = p - (m / (sqrt(v) / s2 + eps)) s1
// with per-tensor s1 = lr / (1 - b1^t) and s2 = sqrt(1 - b2^t) (scal[2i], scal[2i+1]), all in
// float32 in the same order as the tfjs composition it replaces (contraction into FMA is off, so
// the results are the same bits). outs[i] may be ps[i] (in place). The element range of all
// tensors together is split across threads (it is memory-bound: worth it only for millions).
typedef struct {
  int count;
  float **p, **g, **m, **v, **o;
  long *off;  // prefix sums of the sizes (count + 1)
  const float *scal;
  float b1, c1, b2, c2, eps;
} adam_ctx;

__attribute__((optimize("fp-contract=off"))) static void adam_range(void *vc, long begin, long end, int tid) {
  const adam_ctx *a = (const adam_ctx *)vc;
  const float b1 = a->b1, c1 = a->c1, b2 = a->b2, c2 = a->c2, eps = a->eps;
  for (int t = 0; t < a->count; t++) {
    long lo = a->off[t], hi = a->off[t + 1];
    if (hi <= begin || lo >= end) continue;
    const long i0 = (begin > lo ? begin : lo) - lo, i1 = (end < hi ? end : hi) - lo;
    const float s1 = a->scal[2 * t], s2 = a->scal[2 * t + 1];
    const float *p = a->p[t];
    const float *restrict g = a->g[t];
    float *restrict m = a->m[t];
    float *restrict v = a->v[t];
    float *o = a->o[t];  // may be p
    for (long i = i0; i < i1; i++) {
      const float gi = g[i];
      const float mi = m[i] * b1 + gi * c1;
      const float vi = v[i] * b2 + (gi * gi) * c2;
      m[i] = mi;
      v[i] = vi;
      const float den = sqrtf(vi) / s2 + eps;
      o[i] = p[i] - (mi / den) * s1;
    }
  }
}

static int get_f32_elem(napi_env env, napi_value arr, uint32_t i, float **data, size_t *len) {
  napi_value e;
  if (napi_get_element(env, arr, i, &e) != napi_ok) return 0;
  return get_f32(env, e, data, len) && *data != NULL;
}

static napi_value js_adam(napi_env env, napi_callback_info info) {
  GET_ARGS(11);
  uint32_t count = 0;
  bool is_arr = false;
  napi_is_array(env, argv[0], &is_arr);
  if (!is_arr) return throw_err(env, "kernels_blas: adam: ps must be an array of Float32Arrays");
  napi_get_array_length(env, argv[0], &count);
  for (int k = 1; k < 5; k++) {
    uint32_t c2 = 0;
    napi_is_array(env, argv[k], &is_arr);
    if (!is_arr || napi_get_array_length(env, argv[k], &c2) != napi_ok || c2 != count)
      return throw_err(env, "kernels_blas: adam: ps, gs, ms, vs and outs must be arrays of the same length");
  }
  F32(5, scal);
  if (scal_len < 2 * (size_t)count) return throw_err(env, "kernels_blas: adam: scal needs 2 values per tensor");
  adam_ctx a;
  a.count = (int)count;
  a.scal = scal;
  a.b1 = (float)get_double(env, argv[6]);
  a.c1 = (float)get_double(env, argv[7]);
  a.b2 = (float)get_double(env, argv[8]);
  a.c2 = (float)get_double(env, argv[9]);
  a.eps = (float)get_double(env, argv[10]);
  float **bufs = (float **)malloc(sizeof(float *) * 5 * (count ? count : 1));
  long *off = (long *)malloc(sizeof(long) * (count + 1));
  if (!bufs || !off) {
    free(bufs);
    free(off);
    return throw_err(env, "kernels_blas: out of memory");
  }
  a.p = bufs;
  a.g = bufs + count;
  a.m = bufs + 2 * count;
  a.v = bufs + 3 * count;
  a.o = bufs + 4 * count;
  a.off = off;
  off[0] = 0;
  for (uint32_t i = 0; i < count; i++) {
    size_t n[5];
    for (int k = 0; k < 5; k++) {
      if (!get_f32_elem(env, argv[k], i, &bufs[k * count + i], &n[k])) {
        free(bufs);
        free(off);
        return throw_err(env, "kernels_blas: adam: every entry must be a Float32Array");
      }
    }
    if (n[1] != n[0] || n[2] != n[0] || n[3] != n[0] || n[4] != n[0]) {
      free(bufs);
      free(off);
      return throw_err(env, "kernels_blas: adam: parameter, gradient, moments and output differ in size");
    }
    off[i + 1] = off[i] + (long)n[0];
  }
  const long total = off[count];
  // ~10 flops and 28 bytes of traffic per element; below ~1M elements one thread is faster
  int nt = total >= (1L << 20) ? g_threads : 1;
  if (nt > total / (1L << 18)) nt = (int)(total / (1L << 18));
  if (nt < 1) nt = 1;
  par_for(total, nt, adam_range, &a);
  free(bufs);
  free(off);
  return NULL;
}
// ---------------------------------------------------------------------------------------------
#define EXPORT(name, fn)                                                   \
  do {                                                                     \
    napi_value f;                                                          \
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);       \
    napi_set_named_property(env, exports, name, f);                        \
  } while (0)

static napi_value init(napi_env env, napi_value exports) {
  EXPORT("setThreads", js_set_threads);
  EXPORT("getThreads", js_get_threads);
  EXPORT("config", js_config);
  EXPORT("bmm", js_bmm);
  EXPORT("gemm", js_gemm);
  EXPORT("adam", js_adam);
  EXPORT("gruFwd", js_gru_fwd);
  EXPORT("addRows", js_add_rows);
  EXPORT("copy2d", js_copy2d);
  EXPORT("ewise", js_ewise);
  EXPORT("heads", js_heads);
  EXPORT("softmaxRows", js_softmax_rows);
  EXPORT("softmaxBwd", js_softmax_bwd);
  EXPORT("pairTanhMean", js_pair_tanh_mean);
  EXPORT("colSum", js_col_sum);
  EXPORT("gruBwd", js_gru_bwd);
  EXPORT("msgFwd", js_msg_fwd);
  EXPORT("msgBwd", js_msg_bwd);
  EXPORT("epilogue", js_epilogue);
  EXPORT("conv2d", js_conv2d);
  EXPORT("conv2dBackpropInput", js_conv2d_bp_input);
  EXPORT("conv2dBackpropFilter", js_conv2d_bp_filter);
  EXPORT("depthwise", js_depthwise);
  EXPORT("depthwiseBackpropInput", js_depthwise_bp_input);
  EXPORT("depthwiseBackpropFilter", js_depthwise_bp_filter);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
