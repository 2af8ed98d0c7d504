{
  "targets": [
    {
      "target_name": "moco_native",
      "sources": ["native/addon.cc", "native/dist.cc", "native/image.cc", "native/device.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/find-libtorch.cjs include)"
      ],
      "defines": ["NAPI_EXPERIMENTAL", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y"],
      "cflags_cc": ["-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "<!@(node scripts/find-libtorch.cjs cflags)"],
      "ldflags": ["<!@(node scripts/find-libtorch.cjs ldflags)"],
      "libraries": ["<!@(node scripts/find-libtorch.cjs libs)"]
    },
    {
      "target_name": "moco_allocator",
      "sources": ["native/allocator.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
