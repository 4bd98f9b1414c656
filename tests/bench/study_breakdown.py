#!/usr/bin/env python3
"""study_breakdown.py - where the time of a `cisweep run` went, from its own records only.

Reads OUT/timings.json (the step wall times cisweep run wrote) and OUT/sweep.db (the job store:
attempts.run_ms, stages.wall_ms/phases_json, results' cpu_*/time_* rows) and prints Markdown:
  1. the steps (world, models, sweep, report) and the sweep's jobs, wall and busy workers;
  2. per method: fresh applications (a stage restored from a snapshot records a "restore" phase
     and is counted apart), mean and total wall seconds;
  3. the evaluation: per part, mean and total (the workers' own timings);
  4. per model slot and pattern: jobs, mean and total attempt wall.
Usage: study_breakdown.py OUT_DIR   (docs/study.md "Time"; tests/bench/bench_study.sh calls it)
Every number is a query over the run's own rows: nothing is estimated here."""
import json
import os
import sqlite3
import sys


def main(argv):
    if len(argv) != 2:
        print("usage: study_breakdown.py OUT_DIR", file=sys.stderr)
        return 2
    out = argv[1]
    tpath, dbpath = os.path.join(out, "timings.json"), os.path.join(out, "sweep.db")
    if not os.path.exists(dbpath):
        print(f"study_breakdown: {dbpath}: no such file (expected the sweep database of a cisweep run)",
              file=sys.stderr)
        return 1
    try:
        t = json.load(open(tpath)) if os.path.exists(tpath) else {}
    except (OSError, ValueError) as e:
        print(f"study_breakdown: {tpath}: not a JSON object ({e})", file=sys.stderr)
        return 1
    db = sqlite3.connect(f"file:{dbpath}?mode=ro", uri=True)
    q = lambda sql, *a: db.execute(sql, a).fetchall()

    print("## Steps\n")
    print("| step | wall s |\n|---|---|")
    for k in ("world_s", "models_s", "statistics_s", "sweep_s", "report_s"):
        if k in t:
            print(f"| {k[:-2]}{' (inside the sweep)' if k == 'statistics_s' and t.get('statistics_in_sweep') else ''} | {t[k]:.1f} |")
    (jobs, done, failed), = q("select count(*), sum(state='done'), sum(state in ('failed','dead')) from jobs")
    (att_s, t0, t1), = q("select sum(run_ms)/1000.0, min(started_at), max(ended_at) from attempts where outcome='done'")
    print(f"\njobs {jobs}, done {done}, failed/dead {failed}; models source: {t.get('models_source', '?')}; "
          f"workers {t.get('workers', '?')}")
    if t0 and t1:
        span = (t1 - t0) / 1000.0
        print(f"first attempt start to last attempt end {span:.0f} s; attempt wall summed {att_s:.0f} s "
              f"= {att_s / span:.2f} jobs running on average")

    print("\n## Stages (fresh = computed; restored = taken from a snapshot)\n")
    print("| method | recompress | fresh | restored | mean s (fresh) | total s (fresh) |\n|---|---|---|---|---|---|")
    rows = q("""select method, recompress,
                       sum(coalesce(phases_json,'') not like '%"restore"%'),
                       sum(coalesce(phases_json,'') like '%"restore"%'),
                       sum(case when coalesce(phases_json,'') not like '%"restore"%' then wall_ms else 0 end)/1000.0
                from stages s join attempts a using (job_id, attempt) where a.outcome='done'
                group by 1, 2 order by 5 desc""")
    tot = 0.0
    for m, rc, fr, rs, s in rows:
        tot += s or 0
        print(f"| {m} | {'yes' if rc else ''} | {fr} | {rs} | {(s / fr if fr else 0):.2f} | {s:.0f} |")
    print(f"| all stages | | | | | {tot:.0f} |")

    print("\n## Evaluation (the workers' own timings, per job)\n")
    print("| part | mean s | total s |\n|---|---|---|")
    for m, avg, s in q("""select metric, avg(value), sum(value) from results
                          where is_current=1 and (metric like 'cpu_%' or metric in ('time_eval_s','time_interventions_s'))
                          group by metric order by metric"""):
        print(f"| {m} | {avg:.3f} | {s:.0f} |")

    print("\n## Per model slot and pattern\n")
    print("| model | pattern | jobs | mean s | total s |\n|---|---|---|---|---|")
    for name, pat, n, avg, s in q("""select m.name, c.pattern, count(*), avg(a.run_ms)/1000.0, sum(a.run_ms)/1000.0
                                    from attempts a join jobs j on j.id=a.job_id
                                    join compositions c on c.id=j.composition_id join models m on m.id=j.model_id
                                    where a.outcome='done' group by 1, 2 order by 5 desc"""):
        print(f"| {name} | {pat} | {n} | {avg:.2f} | {s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
