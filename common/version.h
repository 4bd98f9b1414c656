/* version.h - cisweep's version (semantic) and the wire protocol version it speaks. */
#ifndef CISWEEP_VERSION_H
#define CISWEEP_VERSION_H
#define CISWEEP_VERSION "0.1.0"
/* The results epoch: which generation of job results this build computes. The worker writes it
 * into every model job's result as the metric row `results_epoch`; the coordinator reuses a done
 * job of another sweep only when its row equals this value, and `cisweep run` refuses to continue
 * a sweep whose done jobs carry another epoch (or none) unless --rerun-stale (docs/orchestration.md
 * "Results epoch"). RULE: bump it whenever a change alters any job's results: a preset (e.g. a tiny
 * preset of worker/interventions), an algorithm, a metric, the evaluation. 7: session 7 (MEMIT's
 * tiny v_steps 50 -> 35, AWQ's tiny n_samples 64 -> 16); results before it carry no row.
 * 8: session 9, the study sized for 30 minutes on 2 cores (docs/study.md "Session 9"): MEMIT's
 * tiny v_steps back to the paper's 25, LoRA's tiny 60 steps at 5.83e-3, GD's tiny train_size 360
 * at lr 1.333e-3, AWQ's tiny scale grid 10, the sweep profile's sets 96 / 128 / 16 / 50; and RMU's
 * tiny preset layer 3 with alpha 30 (issue 11: inside the MMLU allowance on both shipped models).
 * 9: session 12, RMU's tiny preset tuned on the cloze rows (issue 11, docs/unlearning.md "Cloze
 * accuracy"): layer 6, c 1200, alpha 80 for the tiny family, layer 3, c 300, alpha 30 kept for its
 * Mistral. */
#define CISWEEP_RESULTS_EPOCH 9
const char *cisweep_version(void);
#endif
