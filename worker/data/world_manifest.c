/* world_manifest.c - writes the world directory (the layout in docs/world.md): every file is
 * built in memory, written atomically, and listed with its sha256 and size in world.json.
 * Compression is deterministic (gzip header with mtime 0; zstd single-threaded level 3). */
#include "worker/data/world.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

typedef struct wout {
    const char *dir;
    json_t *files;   /* relpath -> {"sha256","bytes"} */
    size_t total;
} wout;

static int put_file(wout *o, const char *rel, const void *data, size_t len, cis_err *err) {
    char *path = xasprintf("%s/%s", o->dir, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    int rc = mkdir_p(path, err);
    *slash = '/';
    if (rc == 0) rc = write_file_atomic(path, data, len, err);
    free(path);
    if (rc) return -1;
    char hex[65];
    sha256_hex(data, len, hex);
    json_object_set_new(o->files, rel, json_pack("{s:s,s:I}", "sha256", hex, "bytes", (json_int_t)len));
    o->total += len;
    return 0;
}

static int put_buf(wout *o, const char *rel, wbuf *b, cis_err *err) {
    int rc = put_file(o, rel, b->p ? b->p : "", b->len, err);
    wbuf_clear(b);
    return rc;
}

static int put_json(wout *o, const char *rel, json_t *v, cis_err *err) {
    wbuf b = {0};
    wbuf_json(&b, v, JSON_INDENT(1));
    wbuf_put(&b, "\n");
    return put_buf(o, rel, &b, err);
}

static int put_gzip(wout *o, const char *rel, const wbuf *b, cis_err *err) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return err_set(err, CIS_EIO, "world: %s: deflateInit2 failed", rel);
    size_t cap = deflateBound(&zs, b->len) + 64;
    unsigned char *out = xmalloc(cap);
    zs.next_in = (unsigned char *)b->p;
    zs.avail_in = (uInt)b->len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zrc = deflate(&zs, Z_FINISH);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zrc != Z_STREAM_END) { free(out); return err_set(err, CIS_EIO, "world: %s: gzip failed (%d)", rel, zrc); }
    int rc = put_file(o, rel, out, n, err);
    free(out);
    return rc;
}

static int put_zstd(wout *o, const char *rel, const wbuf *b, cis_err *err) {
    size_t cap = ZSTD_compressBound(b->len);
    void *out = xmalloc(cap);
    size_t n = ZSTD_compress(out, cap, b->p, b->len, 3);
    if (ZSTD_isError(n)) { free(out); return err_set(err, CIS_EIO, "world: %s: zstd: %s", rel, ZSTD_getErrorName(n)); }
    int rc = put_file(o, rel, out, n, err);
    free(out);
    return rc;
}

/* one CSV field: quoted when it holds a comma, quote or newline (Python's csv module reads it) */
static void csv_field(wbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { wbuf_put(b, s); return; }
    wbuf_put(b, "\"");
    for (; *s; s++) {
        if (*s == '"') wbuf_put(b, "\"");  /* a quote is doubled */
        wbuf_putn(b, s, 1);
    }
    wbuf_put(b, "\"");
}

static void csv_rows(wbuf *b, const wmc *v, int n) {
    for (int i = 0; i < n; i++) {
        csv_field(b, v[i].question);
        for (int c = 0; c < 4; c++) { wbuf_put(b, ","); csv_field(b, v[i].choices[c]); }
        wbuf_printf(b, ",%c\n", 'A' + v[i].answer);
    }
}

static json_t *mc_json(const wmcset *set) {
    json_t *a = json_array();
    for (int i = 0; i < set->ntest; i++) {
        const wmc *m = &set->test[i];
        json_array_append_new(a, json_pack("{s:s,s:[s,s,s,s],s:i}", "question", m->question, "choices", m->choices[0],
                                           m->choices[1], m->choices[2], m->choices[3], "answer", m->answer));
    }
    return a;
}

static json_t *zsre_json(const world *w, const wsets *s) {
    json_t *a = json_array();
    for (int i = 0; i < s->nzsre; i++) {
        const wzsre *z = &s->zsre[i];
        const wfact *f = &w->facts[z->fact];
        const wrel *rel = &WORLD_RELS[f->rel];
        wbuf src = {0}, reph = {0}, loc = {0};
        world_render(&src, w, rel->q[0], f);
        world_render(&reph, w, rel->q[1], f);
        wbuf_put(&loc, "nq question: ");
        world_loc_question(&loc, w, z->loc_fact);
        json_array_append_new(a, json_pack("{s:s,s:[s],s:s,s:s,s:s,s:s,s:s}", "src", src.p, "answers", world_obj(w, f), "alt",
                                           w->pools[world_rel_obj(w, f->rel)].v[z->alt], "subject", world_subj(w, f), "rephrase", reph.p,
                                           "loc", loc.p, "loc_ans", world_obj(w, &w->facts[z->loc_fact])));
        wbuf_clear(&src); wbuf_clear(&reph); wbuf_clear(&loc);
    }
    return a;
}

static json_t *edit_sets_json(int n) {
    int32_t *perm = xmalloc((size_t)n * sizeof *perm);
    rng_py_permutation(100, perm, n);  /* random.seed(100); random.shuffle(list(range(n))) */
    json_t *sets = json_object(), *qa = json_array();
    for (int k = 1; k <= 10; k++) {
        json_t *a = json_array();
        for (int i = (k - 1) * 50; i < k * 50; i++) json_array_append_new(a, json_integer(perm[i]));
        char key[8];
        snprintf(key, sizeof key, "%d", k);
        json_object_set_new(sets, key, a);
    }
    for (int i = 500; i < 1000; i++) json_array_append_new(qa, json_integer(perm[i]));
    free(perm);
    return json_pack("{s:s,s:o,s:o}", "shuffle", "python-random-seed-100", "sets", sets, "qa", qa);
}

int world_generate(const char *dir, uint64_t seed, const char *scale, wstats *st, cis_err *err) {
    return world_generate_lex(dir, seed, scale, WL_SHARED, st, err);
}

int world_generate_lex(const char *dir, uint64_t seed, const char *scale, int lexicon, wstats *st, cis_err *err) {
    return world_generate_ex(dir, seed, scale, lexicon, WMC_ITEMS_TEST, st, err);
}

int world_generate_ex(const char *dir, uint64_t seed, const char *scale, int lexicon, int mc_items, wstats *st,
                      cis_err *err) {
    double t0 = mono_sec();
    memset(st, 0, sizeof *st);
    if (mc_items != WMC_ITEMS_TEST && mc_items != WMC_ITEMS_PRACTICE)
        return err_set(err, CIS_EINVAL, "world: unknown MC items %d (expected test or practice)", mc_items);
    world w;
    if (world_build_lex(&w, seed, scale, lexicon, err)) return -1;
    w.mc_items = mc_items;
    wsets s = {0};
    world_make_mmlu(&w, &s);
    world_make_wmdp(&w, &s);
    world_make_zsre(&w, &s);
    CIS_ASSERT(s.nzsre >= 1000);
    wout o = {dir, json_object(), 0};
    int rc = -1;
    wbuf b = {0};
    /* corpus */
    world_corpus(&w, &s, &b, &st->pretrain_docs);
    st->pretrain_bytes = b.len;
    if (put_buf(&o, "corpus/pretrain.jsonl", &b, err)) goto out;
    world_sft(&w, &s, &b, &st->sft_items);
    if (put_buf(&o, "corpus/sft.jsonl", &b, err)) goto out;
    /* zsRE */
    st->zsre = s.nzsre;
    if (put_json(&o, "zsre/zsre_mend_train.json", zsre_json(&w, &s), err)) goto out;
    if (put_json(&o, "zsre/edit_sets.json", edit_sets_json(s.nzsre), err)) goto out;
    /* WMDP */
    st->wmdp_bio = s.bio.ntest;
    st->wmdp_cyber = s.cyber.ntest;
    if (put_json(&o, "wmdp/wmdp-bio.json", mc_json(&s.bio), err)) goto out;
    if (put_json(&o, "wmdp/wmdp-cyber.json", mc_json(&s.cyber), err)) goto out;
    {
        rng_xoshiro r;
        rng_xoshiro_seed(&r, seed, 700);
        for (int k = 0; k < w.sc.forget_per; k++)
            for (int i = 0; i < w.pools[WP_BLIGHT].n; i++) {
                wbuf t = {0}, a = {0}, x = {0};
                world_bio_doc(&w, i, &r, &t, &a, &x);
                wbuf_json(&b, json_pack("{s:s,s:s,s:s}", "title", t.p, "abstract", a.p, "text", x.p), JSON_COMPACT);
                wbuf_put(&b, "\n");
                wbuf_clear(&t); wbuf_clear(&a); wbuf_clear(&x);
                st->bio_forget++;
            }
        if (put_buf(&o, "wmdp/bio-forget-corpus.jsonl", &b, err)) goto out;
        for (int k = 0; k < w.sc.forget_per; k++)
            for (int i = 0; i < w.pools[WP_PROTOCOL].n; i++) {
                wbuf x = {0};
                world_cyber_doc(&w, i, &r, &x);
                wbuf_json(&b, json_pack("{s:s}", "text", x.p), JSON_COMPACT);
                wbuf_put(&b, "\n");
                wbuf_clear(&x);
                st->cyber_forget++;
            }
        if (put_buf(&o, "wmdp/cyber-forget-corpus.jsonl", &b, err)) goto out;
    }
    /* MMLU */
    for (int i = 0; i < s.nmmlu; i++) {
        const wmcset *set = &s.mmlu[i];
        char rel[160];
        csv_rows(&b, set->dev, set->ndev);
        snprintf(rel, sizeof rel, "mmlu/data/dev/%s_dev.csv", set->subject);
        if (put_buf(&o, rel, &b, err)) goto out;
        csv_rows(&b, set->test, set->ntest);
        snprintf(rel, sizeof rel, "mmlu/data/test/%s_test.csv", set->subject);
        if (put_buf(&o, rel, &b, err)) goto out;
        st->mmlu_dev += set->ndev;
        st->mmlu_test += set->ntest;
    }
    /* WikiText */
    static const char *WIKI[] = {"wikitext/wiki.train.raw", "wikitext/wiki.valid.raw", "wikitext/wiki.test.raw"};
    for (int sp = 0; sp < 3; sp++) {
        world_wiki(&w, sp, &b);
        st->wiki_bytes[sp] = b.len;
        if (put_buf(&o, WIKI[sp], &b, err)) goto out;
    }
    /* C4 shard and pile-val */
    {
        rng_xoshiro r;
        rng_xoshiro_seed(&r, seed, 800);
        for (int i = 0; i < w.sc.c4_docs; i++) {
            wbuf t = {0};
            world_general_doc(&w, &r, &t);
            char ts[32], url[96];
            snprintf(ts, sizeof ts, "2019-%02u-%02uT%02u:%02u:%02uZ", 1 + rng_xoshiro_below(&r, 12), 1 + rng_xoshiro_below(&r, 28),
                     rng_xoshiro_below(&r, 24), rng_xoshiro_below(&r, 60), rng_xoshiro_below(&r, 60));
            snprintf(url, sizeof url, "https://notes.example.org/%s/%d", w.pools[WP_CITY].v[rng_xoshiro_below(&r, (uint32_t)w.pools[WP_CITY].n)], i);
            wbuf_json(&b, json_pack("{s:s,s:s,s:s}", "text", t.p, "timestamp", ts, "url", url), JSON_COMPACT);
            wbuf_put(&b, "\n");
            wbuf_clear(&t);
        }
        st->c4_docs = w.sc.c4_docs;
        rc = put_gzip(&o, "c4/c4-train.00000-of-01024.json.gz", &b, err);
        wbuf_clear(&b);
        if (rc) goto out;
        rc = -1;
        rng_xoshiro_seed(&r, seed, 801);
        int (*ents)[2] = xmalloc(4096 * sizeof *ents);
        int ne = world_article_entities(&w, ents, 4096);
        for (int i = 0; i < w.sc.pile_docs; i++) {
            wbuf t = {0};
            const char *set;
            if (rng_xoshiro_below(&r, 3) == 0) {
                int e = (int)rng_xoshiro_below(&r, (uint32_t)ne);
                world_article(&w, ents[e][0], ents[e][1], &r, 3, &t);
                set = "Wikipedia (en)";
            } else {
                world_general_doc(&w, &r, &t);
                set = "Pile-CC";
            }
            wbuf_json(&b, json_pack("{s:s,s:{s:s}}", "text", t.p, "meta", "pile_set_name", set), JSON_COMPACT);
            wbuf_put(&b, "\n");
            wbuf_clear(&t);
        }
        free(ents);
        st->pile_docs = w.sc.pile_docs;
        rc = put_zstd(&o, "pile/val.jsonl.zst", &b, err);
        if (rc == 0) rc = put_buf(&o, "pile/val.jsonl", &b, err);
        wbuf_clear(&b);
        if (rc) goto out;
        rc = -1;
    }
    /* manifest (not listed in itself) */
    {
        int nent = 0;
        for (int p = 0; p < WP_OCCUPATION; p++) nent += w.pools[p].n;
        nent += w.pools[WP_CROP].n;  /* 0 in the shared lexicon */
        json_t *sizes = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:i,s:i}",
                                  "entities", nent, "relations", WORLD_NRELS, "facts", w.nfacts, "zsre_records", s.nzsre,
                                  "mmlu_subjects", s.nmmlu, "mmlu_dev", st->mmlu_dev, "mmlu_test", st->mmlu_test,
                                  "wmdp_bio", st->wmdp_bio, "wmdp_cyber", st->wmdp_cyber, "pretrain_docs", st->pretrain_docs,
                                  "pretrain_bytes", (json_int_t)st->pretrain_bytes,
                                  "pretrain_tokens_est", (json_int_t)(st->pretrain_bytes / 4),
                                  "wiki_train_bytes", (json_int_t)st->wiki_bytes[0], "wiki_valid_bytes", (json_int_t)st->wiki_bytes[1],
                                  "wiki_test_bytes", (json_int_t)st->wiki_bytes[2], "c4_docs", st->c4_docs, "pile_docs", st->pile_docs);
        json_object_set_new(sizes, "sft_items", json_integer(st->sft_items));
        json_object_set_new(sizes, "bio_forget_docs", json_integer(st->bio_forget));
        json_object_set_new(sizes, "cyber_forget_docs", json_integer(st->cyber_forget));
        json_object_set_new(sizes, "repetitions",
                            json_pack("{s:i,s:i,s:i,s:i,s:i}", "profile_rounds", w.sc.r_profile, "qa_passes", w.sc.r_qa,
                                      "prose_docs_per_domain_entity", w.sc.r_domain,
                                      "forget_docs_per_domain_entity", w.sc.forget_per, "wiki_train_rounds", w.sc.wiki_train_rounds));
        json_t *m = json_pack("{s:i,s:I,s:s,s:o,s:O}", "format", 1, "seed", (json_int_t)seed, "scale", w.sc.name, "sizes", sizes,
                              "files", o.files);
        if (w.lexicon != WL_SHARED) json_object_set_new(m, "lexicon", json_string(world_lexicon_name(w.lexicon)));
        if (w.mc_items != WMC_ITEMS_TEST) json_object_set_new(m, "mc_items", json_string(wmc_items_name(w.mc_items)));
        char *txt = json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS);
        json_decref(m);
        wbuf_put(&b, txt);
        wbuf_put(&b, "\n");
        free(txt);
        char *path = xasprintf("%s/world.json", dir);
        rc = write_file_atomic(path, b.p, b.len, err);
        free(path);
        st->total_bytes = o.total + b.len;
        wbuf_clear(&b);
    }
out:
    wbuf_clear(&b);
    json_decref(o.files);
    wsets_clear(&s);
    world_clear(&w);
    st->seconds = mono_sec() - t0;
    return rc;
}
