{
  "targets": [
    {
      "target_name": "kernels_blas",
      "sources": ["native/kernels_blas.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=gnu11", "-fno-math-errno", "-Wall", "-Wno-unused-parameter"],
      "libraries": ["-lopenblas", "-lpthread", "-lm"]
    }
  ]
}
