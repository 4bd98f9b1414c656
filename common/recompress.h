/* recompress.h - the recompress policy of a composition, shared by the coordinator (a grid key,
 * stored with the composition, sent in the JOB message) and the worker (the stage plan,
 * worker/interventions/plan.c). What each policy does (docs/interventions.md "Recompress policy"):
 *   paper   the paper's rule (upstream main.py:416-423, ../shared/docs/fidelity.md §3): a
 *           composition of more than one stage that starts with Wanda, SparseGPT or GPTQ re-applies
 *           that compressor after its last stage; never AWQ. The default.
 *   never   the stages as written: nothing re-applied.
 *   always  the paper's rule for every compressor stage (AWQ included) that another stage follows:
 *           each is re-applied after the last stage, in composition order (beyond the paper; a
 *           superset of paper).
 *   mask    nothing re-applied; the zeros a pruner (Wanda, SparseGPT) leaves are kept at zero
 *           during every later stage: re-imposed after every optimizer step of a trainer and after
 *           every later stage (closed-form MEMIT, LoRA's merge). A quantizer (GPTQ, AWQ) followed by
 *           another stage is refused under `mask` (its grid is kept in the stage's record file,
 *           worker/interventions/cmp_record.h, but re-snapping to it is not built). */
#ifndef CISWEEP_COMMON_RECOMPRESS_H
#define CISWEEP_COMMON_RECOMPRESS_H

typedef enum recompress_policy {
    RECOMPRESS_PAPER = 0,
    RECOMPRESS_NEVER = 1,
    RECOMPRESS_ALWAYS = 2,
    RECOMPRESS_MASK = 3,
} recompress_policy;

/* the allowed names, for error messages */
#define RECOMPRESS_CHOICES "paper|never|always|mask"

/* recompress_name: "paper", "never", "always", "mask" ("?" out of range). */
const char *recompress_name(recompress_policy p);
/* recompress_parse: the policy of that name, or -1 when s is NULL or not one of RECOMPRESS_CHOICES. */
int recompress_parse(const char *s);

#endif
