#include "runner/cli/cli.h"

int main(int argc, char** argv) { return ladle::runner::RunCli(argc, argv); }
