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

static int g_threads = 1;  // threads for our own loops (im2col, depthwise); BLAS has its own pool

// ---------------------------------------------------------------------------------------------
// Small fork-join helper for the non-BLAS loops. Threads are created per call, so it is used only
// when the work is large enough (see par_threads) for ~50 us of thread start-up not to matter.
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
  if (work < 2e6) t = 1;  // below ~1 ms of work, thread start-up costs more than it saves
  if (t > items) t = (int)items;
  if (t < 1) t = 1;
  return t;
}

static void par_for(long items, int nt, range_fn fn, void *ctx) {
  if (nt <= 1) {
    fn(ctx, 0, items, 0);
    return;
  }
  par_job jobs[64];
  pthread_t th[64];
  int started[64];
  if (nt > 64) nt = 64;
  for (int t = 0; t < nt; t++) {
    jobs[t].fn = fn;
    jobs[t].ctx = ctx;
    jobs[t].begin = items * t / nt;
    jobs[t].end = items * (t + 1) / nt;
    jobs[t].tid = t;
  }
  for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, par_entry, &jobs[t]) == 0;
  fn(ctx, jobs[0].begin, jobs[0].end, 0);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(th[t], NULL);
    else fn(ctx, jobs[t].begin, jobs[t].end, t);  // could not start a thread: do its share here
  }
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
  openblas_set_num_threads((int)n);
  g_threads = (int)n;
  return NULL;
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
  napi_value r;
  napi_create_int32(env, openblas_get_num_threads(), &r);
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
  if ((ai && (long)ail < batch) || (bi && (long)bil < batch)) return throw_err(env, "kernels_blas: short batch map");
  if ((size_t)(batch * M * N) > c_len) return throw_err(env, "kernels_blas: output too small");
  if (batch <= 0 || M <= 0 || N <= 0) return NULL;
  if (K <= 0) {
    memset(c, 0, sizeof(float) * batch * M * N);
    return NULL;
  }
  const size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
  for (long i = 0; i < batch; i++) {
    size_t ia = ai ? (size_t)ai[i] : (size_t)i, ib = bi ? (size_t)bi[i] : (size_t)i;
    if ((ia + 1) * sa > a_len || (ib + 1) * sb > b_len) return throw_err(env, "kernels_blas: input too small");
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, 1.0f, a + ia * sa, ta ? (int)M : (int)K, b + ib * sb, tb ? (int)K : (int)N, 0.0f,
                c + (size_t)i * sc, (int)N);
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
static napi_value js_epilogue(napi_env env, napi_callback_info info) {
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

// Rows of the im2col matrix per chunk: enough for sgemm to run at full speed, small enough for the
// column buffer to stay near the cache (about 4 MiB).
static long chunk_rows(long P, long K) {
  long r = (1L << 20) / (K > 0 ? K : 1);
  if (r < 256) r = 256;
  if (r > P) r = P;
  return r;
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

static void im2col(const conv_p *q, const float *x, float *buf, long p0, long rows) {
  im2col_ctx cx = {q, x, buf, p0};
  const long K = q->FH * q->FW * q->C;
  par_for(rows, par_threads(rows, (double)rows * K * 4), im2col_range, &cx);
}

// Adds the columns of pixels [p0, p0+rows) back into dx (the transpose of im2col).
static void col2im_add(const conv_p *q, const float *buf, float *dx, long p0, long rows) {
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)P, (int)q.CO, (int)K, 1.0f, x, (int)K, w, (int)q.CO,
                0.0f, y, (int)q.CO);
    return NULL;
  }
  const long R = chunk_rows(P, K);
  float *buf = (float *)malloc(sizeof(float) * R * K);
  if (!buf) return throw_err(env, "kernels_blas: out of memory");
  for (long p0 = 0; p0 < P; p0 += R) {
    const long r = P - p0 < R ? P - p0 : R;
    im2col(&q, x, buf, p0, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)q.CO, (int)K, 1.0f, buf, (int)K, w, (int)q.CO,
                0.0f, y + (size_t)p0 * q.CO, (int)q.CO);
  }
  free(buf);
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)q.C, (int)q.CO, 1.0f, dy, (int)q.CO, w, (int)q.CO,
                0.0f, dx, (int)q.C);
    return NULL;
  }
  memset(dx, 0, sizeof(float) * xsize);
  const long R = chunk_rows(P, K);
  float *buf = (float *)malloc(sizeof(float) * R * K);
  if (!buf) return throw_err(env, "kernels_blas: out of memory");
  for (long p0 = 0; p0 < P; p0 += R) {
    const long r = P - p0 < R ? P - p0 : R;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)K, (int)q.CO, 1.0f, dy + (size_t)p0 * q.CO,
                (int)q.CO, w, (int)q.CO, 0.0f, buf, (int)K);
    col2im_add(&q, buf, dx, p0, r);
  }
  free(buf);
  return NULL;
}

// conv2dBackpropFilter(x, dy, dw, params): dw = im2col(x)^T * dy, chunk sums added in double so the
// reduction over all N*OH*OW pixels keeps float32 accuracy.
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
  if (is_pointwise(&q) && P <= 4096) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)q.CO, (int)P, 1.0f, x, (int)K, dy, (int)q.CO,
                0.0f, dw, (int)q.CO);
    return NULL;
  }
  const int pw = is_pointwise(&q);
  const long R = pw ? 4096 : chunk_rows(P, K);
  float *buf = pw ? NULL : (float *)malloc(sizeof(float) * R * K);
  double *acc = (double *)calloc(wsize, sizeof(double));
  if ((!pw && !buf) || !acc) {
    free(buf);
    free(acc);
    return throw_err(env, "kernels_blas: out of memory");
  }
  for (long p0 = 0; p0 < P; p0 += R) {
    const long r = P - p0 < R ? P - p0 : R;
    const float *cols = x + (size_t)p0 * K;
    if (!pw) {
      im2col(&q, x, buf, p0, r);
      cols = buf;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)q.CO, (int)r, 1.0f, cols, (int)K,
                dy + (size_t)p0 * q.CO, (int)q.CO, 0.0f, dw, (int)q.CO);
    for (size_t j = 0; j < wsize; j++) acc[j] += dw[j];
  }
  for (size_t j = 0; j < wsize; j++) dw[j] = (float)acc[j];
  free(buf);
  free(acc);
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

// Forward over output rows [begin,end) of (n, oh).
static void dw_fwd_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M;
  for (long row = begin; row < end; row++) {
    const long n = row / q->OH, oh = row % q->OH;
    const float *xn = cx->a + (size_t)n * q->H * q->W * C;
    for (long ow = 0; ow < q->OW; ow++) {
      float *o = cx->out + ((size_t)row * q->OW + ow) * CO;
      memset(o, 0, sizeof(float) * CO);
      for (long kh = 0; kh < q->FH; kh++) {
        const long ih = oh * q->SH - q->PT + kh * q->DH;
        if (ih < 0 || ih >= q->H) continue;
        for (long kw = 0; kw < q->FW; kw++) {
          const long iw = ow * q->SW - q->PL + kw * q->DW;
          if (iw < 0 || iw >= q->W) continue;
          const float *xp = xn + ((size_t)ih * q->W + iw) * C;
          const float *wp = cx->b + (size_t)(kh * q->FW + kw) * CO;
          if (M == 1) {
            for (long c = 0; c < C; c++) o[c] += xp[c] * wp[c];
          } else {
            for (long c = 0; c < C; c++)
              for (long m = 0; m < M; m++) o[c * M + m] += xp[c] * wp[c * M + m];
          }
        }
      }
    }
  }
}

// Input gradient, gathered per input row [begin,end) of (n, ih) so threads never write the same row.
static void dw_bpi_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M;
  for (long row = begin; row < end; row++) {
    const long n = row / q->H, ih = row % q->H;
    const float *dyn = cx->a + (size_t)n * q->OH * q->OW * CO;
    for (long iw = 0; iw < q->W; iw++) {
      float *d = cx->out + ((size_t)row * q->W + iw) * C;
      memset(d, 0, sizeof(float) * C);
      for (long kh = 0; kh < q->FH; kh++) {
        const long t = ih + q->PT - kh * q->DH;
        if (t < 0 || t % q->SH) continue;
        const long oh = t / q->SH;
        if (oh >= q->OH) continue;
        for (long kw = 0; kw < q->FW; kw++) {
          const long u = iw + q->PL - kw * q->DW;
          if (u < 0 || u % q->SW) continue;
          const long ow = u / q->SW;
          if (ow >= q->OW) continue;
          const float *g = dyn + ((size_t)oh * q->OW + ow) * CO;
          const float *wp = cx->b + (size_t)(kh * q->FW + kw) * CO;
          if (M == 1) {
            for (long c = 0; c < C; c++) d[c] += g[c] * wp[c];
          } else {
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
}

// Filter gradient over output rows [begin,end): each (n, oh) row is summed in float into a small
// buffer, then added to this thread's double accumulator.
static void dw_bpf_range(void *v, long begin, long end, int tid) {
  const dw_ctx *cx = (const dw_ctx *)v;
  const conv_p *q = cx->q;
  const long C = q->C, M = cx->M, CO = C * M, T = q->FH * q->FW;
  double *acc = cx->acc + (size_t)tid * T * CO;
  float *part = cx->part + (size_t)tid * T * CO;
  for (long row = begin; row < end; row++) {
    const long n = row / q->OH, oh = row % q->OH;
    const float *xn = cx->a + (size_t)n * q->H * q->W * C;
    memset(part, 0, sizeof(float) * T * CO);
    for (long ow = 0; ow < q->OW; ow++) {
      const float *g = cx->b + ((size_t)row * q->OW + ow) * CO;
      for (long kh = 0; kh < q->FH; kh++) {
        const long ih = oh * q->SH - q->PT + kh * q->DH;
        if (ih < 0 || ih >= q->H) continue;
        for (long kw = 0; kw < q->FW; kw++) {
          const long iw = ow * q->SW - q->PL + kw * q->DW;
          if (iw < 0 || iw >= q->W) continue;
          const float *xp = xn + ((size_t)ih * q->W + iw) * C;
          float *pp = part + (size_t)(kh * q->FW + kw) * CO;
          if (M == 1) {
            for (long c = 0; c < C; c++) pp[c] += xp[c] * g[c];
          } else {
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
  if (q->C <= 0 || q->CO % q->C) return 0;
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
  float *part = (float *)malloc(sizeof(float) * wsize * nt);
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
