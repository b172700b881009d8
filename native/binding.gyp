{
  "targets": [
    {
      "target_name": "moekit_native",
      "sources": [
        "napi/addon.cpp",
        "napi/pooled.cpp",
        "kernels/api.cpp",
        "kernels/bf16_acts.cpp",
        "kernels/bf16_path.cpp",
        "kernels/blocking.cpp",
        "kernels/convert.cpp",
        "kernels/cpu_features.cpp",
        "kernels/elementwise.cpp",
        "kernels/engine.cpp",
        "kernels/ffn_api.cpp",
        "kernels/ffn_passes.cpp",
        "kernels/ffn_quant.cpp",
        "kernels/ffn_stages.cpp",
        "kernels/gemm.cpp",
        "kernels/indexing.cpp",
        "kernels/int8.cpp",
        "kernels/isa.cpp",
        "kernels/isa_amx.cpp",
        "kernels/isa_avx2.cpp",
        "kernels/isa_avx512.cpp",
        "kernels/isa_avx512_qgmm.cpp",
        "kernels/isa_avx512bf16.cpp",
        "kernels/isa_avx512bf16_qgmm.cpp",
        "kernels/isa_avx512vnni.cpp",
        "kernels/isa_scalar.cpp",
        "kernels/movement.cpp",
        "kernels/optim.cpp",
        "kernels/probes.cpp",
        "kernels/qgmm.cpp",
        "kernels/reduce.cpp",
        "kernels/routing.cpp",
        "kernels/thread_pool.cpp",
        "kernels/workspace.cpp"
      ],
      "include_dirs": [
        "include",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
