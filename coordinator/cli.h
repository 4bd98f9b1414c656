/* cli.h - the `cisweep` subcommands (one function each; argv[0] is the subcommand name).
 * Each returns the process exit status: 0 ok, 1 runtime failure (or, for run, jobs ended failed/dead),
 * 2 usage error or bad input (grid, SQL). */
#ifndef CISWEEP_CLI_H
#define CISWEEP_CLI_H

int cmd_launch(int argc, char **argv);
int cmd_coordinator(int argc, char **argv);   /* also `resume` */
int cmd_status(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_study(int argc, char **argv);        /* cmd_study.c: `cisweep run` without --grid */
int cmd_findings(int argc, char **argv);     /* cmd_study.c: the paper's findings on a sweep DB */
int cmd_slurm(int argc, char **argv);   /* cmd_slurm.c: `slurm submit` */
int cmd_keygen(int argc, char **argv);       /* `cisweep keygen NAME...`: CURVE key pairs */
int cmd_report(int argc, char **argv);       /* report.c: `cisweep report --db DB --out DIR` */

/* the path of a sibling program (cisweep-worker) next to the running binary; malloc'd */
char *cli_sibling_path(const char *name);

/* cli_stale_refusal: the results epoch guard of a standalone coordinator and of `cisweep slurm
 * submit` (docs/orchestration.md "Results epoch"): a sweep in DB that still has jobs to run and done
 * jobs of another epoch would be completed with results of two generations of presets; refused
 * (returns 2, the message on stderr naming the sweeps and `cisweep retry --stale`). 0: nothing of
 * the kind; 1 (or 2 for a DB of another schema version): the DB could not be read. `cmd` prefixes
 * the message ("coordinator", "slurm submit"). */
int cli_stale_refusal(const char *cmd, const char *db);

#endif
