/* main.c - the `cisweep` command line: one entry point for users. Sweep commands run here (this
 * program never links the engine or CUDA, so a coordinator node needs no GPU stack); the model
 * commands (worker, inspect, train, eval, world, apply) hand over to `cisweep-worker`. */
#include "coordinator/cli.h"
#include "coordinator/grid.h"
#include "common/log.h"
#include "common/version.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
        "usage: cisweep COMMAND [options]\n"
        "sweep commands:\n"
        "  grid FILE [--count|--jobs] [--allow-selftest] [--allow-huge-grid]\n"
        "                                                  expand a grid spec and print its compositions\n"
        "  launch --db DB --grid FILE [--models MAP [--models-dir DIR]] [--name NAME] [--allow-selftest] [--allow-huge-grid] [--extend] [--no-reuse]\n"
        "                                                  store a sweep's compositions and jobs (idempotent; adding\n"
        "                                                  new jobs to an existing sweep needs --extend)\n"
        "  coordinator --db DB --bind ENDPOINT [...]       serve jobs to workers (see --help)\n"
        "  resume --db DB --bind ENDPOINT [...]            restart the coordinator on an existing sweep\n"
        "  status --db DB [--watch [SECONDS]]              progress, rate, ETA, workers, why jobs wait\n"
        "  retry --db DB (--failed | --stale [--sweep NAME] | --where SQL)  send failed/dead, other-results-epoch (--stale) or selected jobs back to pending\n"
        "  cancel --db DB (--where SQL | --all)            cancel pending/leased jobs\n"
        "  export --db DB [--format csv] [--out FILE]      one wide row per finished job\n"
        "  report --db DB --out DIR                        DIR/report.md (the paper's tables) and DIR/report.html (plots)\n"
        "  run --grid FILE --workers N [--db DB] [...]     local launcher: coordinator + N workers to completion\n"
        "  run [--out DIR] [...]                           the study end to end on the embedded default (make run)\n"
        "  findings --db DB [--sweep NAME]                 the paper's findings checked on a sweep's numbers\n"
        "  slurm submit --db DB [--gpus N] [--partition P] [--time T] [...]  coordinator + worker array on Slurm\n"
        "  keygen NAME...                                  CURVE key pairs NAME.key (secret) + NAME.pub\n"
        "coordinator authentication: --curve-key KEY --allow-keys DIR|FILE (workers: --curve-key KEY\n"
        "  --server-key PUB); without keys only a local endpoint, unless --insecure-bind-any\n"
        "model commands (run by cisweep-worker):\n"
        "  worker --connect ENDPOINT [--device cpu|cuda:N] [--cache DIR] [--selftest]\n"
        "  inspect MODEL_DIR | train | eval | world | apply\n"
        "  --version\n";

static void usage(FILE *f) { fputs(USAGE, f); }

/* command_help: `cisweep COMMAND --help` for a sweep command without a help text of its own: the
 * lines of USAGE that describe it (its line and the indented continuation lines after it). 1 when
 * something was printed. */
static int command_help(const char *c) {
    size_t n = strlen(c);
    int printed = 0, in = 0;
    for (const char *l = USAGE; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        bool starts = len > n + 2 && !strncmp(l, "  ", 2) && !strncmp(l + 2, c, n) && l[2 + n] == ' ';
        bool cont = len > 20 && strspn(l, " ") >= 20;   /* a wrapped description line */
        if (starts || (in && cont)) {
            if (!printed) fputs("usage: cisweep ", stdout);
            else if (starts) fputs("       cisweep ", stdout);
            else fputs("       ", stdout);
            fwrite(starts ? l + 2 : l, 1, starts ? len - 2 : len, stdout);
            fputc('\n', stdout);
            printed = 1;
            in = 1;
        } else in = 0;
        l = e ? e + 1 : l + len;
    }
    return printed;
}

int main(int argc, char **argv) {
    log_init("cisweep");
    if (argc < 2) { usage(stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--version")) { printf("cisweep %s\n", cisweep_version()); return 0; }
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) { usage(stdout); return 0; }
    /* commands whose own parser has no --help: their lines of the summary above */
    if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) &&
        (!strcmp(c, "launch") || !strcmp(c, "status") || !strcmp(c, "retry") || !strcmp(c, "cancel") ||
         !strcmp(c, "export") || !strcmp(c, "findings")) && command_help(c))
        return 0;
    if (!strcmp(c, "grid")) return cmd_grid(argc - 1, argv + 1);
    if (!strcmp(c, "launch")) return cmd_launch(argc - 1, argv + 1);
    if (!strcmp(c, "coordinator") || !strcmp(c, "resume")) { log_init("coordinator"); return cmd_coordinator(argc - 1, argv + 1); }
    if (!strcmp(c, "status")) return cmd_status(argc - 1, argv + 1);
    if (!strcmp(c, "retry")) return cmd_retry(argc - 1, argv + 1);
    if (!strcmp(c, "cancel")) return cmd_cancel(argc - 1, argv + 1);
    if (!strcmp(c, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(c, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(c, "slurm")) return cmd_slurm(argc - 1, argv + 1);
    if (!strcmp(c, "run")) { log_init("run"); return cmd_run(argc - 1, argv + 1); }
    if (!strcmp(c, "keygen")) return cmd_keygen(argc - 1, argv + 1);
    if (!strcmp(c, "findings")) return cmd_findings(argc - 1, argv + 1);
    if (!strcmp(c, "worker") || !strcmp(c, "inspect") || !strcmp(c, "train") || !strcmp(c, "eval") ||
        !strcmp(c, "world") || !strcmp(c, "apply")) {
        char *w = cli_sibling_path("cisweep-worker");
        argv[0] = w;
        execv(w, argv);
        fprintf(stderr, "cisweep: cannot run %s: %m\n---> HINT: build it with `make` (it sits next to cisweep)\n", w);
        return 1;
    }
    fprintf(stderr, "cisweep: unknown command \"%s\"\n", c);
    usage(stderr);
    return 2;
}
