/* What a fuzz target gives fuzz_main.cpp besides LLVMFuzzerTestOneInput:
 * valid inputs to start mutating from. A libFuzzer build does not use it
 * (libFuzzer starts from its corpus). */
#pragma once

#include <cstdint>
#include <vector>

std::vector<std::vector<uint8_t>> fuzzSeeds ();
