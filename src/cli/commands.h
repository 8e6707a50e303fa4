/* Entry points of the subcommands; each gets argv starting at the subcommand name and returns
 * the process exit status (0 ok, 1 runtime error, 2 usage error). */
#ifndef DS_CLI_COMMANDS_H
#define DS_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

#endif
