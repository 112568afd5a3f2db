// kqbench: the load generator's entry point; everything else lives in kqbench_lib (see cli.hpp).
#include "kqbench/cli.hpp"

int main(int argc, char** argv) { return kq::bench::kqbench_main(argc, argv); }
