// The addon's pooled float32 storage (pooled.cpp): registers pooledF32, setPooledMaxBytes, trimPooled, pooledStats.
#pragma once

#include <napi.h>

namespace moekit_napi {
void register_pooled(Napi::Env env, Napi::Object exports);
}
