// The attnvision binary: everything lives in the pipelines' command table.
#include "pipelines/commands/commands.h"

int main(int argc, char** argv) { return attnvision::pipelines::run_cli(argc, argv); }
