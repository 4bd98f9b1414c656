/* tokenizer_load.c - reads a Hugging Face tokenizer.json (+ tokenizer_config.json beside it) into
 * struct tokenizer: the BPE model (vocab, merges in the "a b" string form or the [a, b] list form,
 * unk/byte_fallback/fuse_unk/ignore_merges), added tokens, normalizer, pre-tokenizer, decoder,
 * post-processor and the BOS/EOS/pad rules. Anything the encoder does not implement is refused
 * here with an error naming the file and the field. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "worker/engine/tokenizer_internal.h"

#define TOK_MAX_ID 16000000 /* larger ids are refused (no real vocabulary is near this) */

static void gpt2_alphabet(tokenizer *t) {
    for (int i = 0; i < 324; i++) t->cp2byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + extra++);
        t->byte2cp[b] = cp;
        t->cp2byte[cp] = (int16_t)b;
    }
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
static bool jbool(json_t *o, const char *k, bool dflt) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* a Replace pattern must be {"String": "..."}; Regex patterns are refused */
static int replace_pattern(const tokenizer *t, json_t *o, const char *field, char **out, cis_err *err) {
    json_t *p = json_object_get(o, "pattern");
    const char *s = json_is_object(p) ? jstr(p, "String") : NULL;
    if (!s) return err_set(err, CIS_EINVAL, "%s: %s.pattern: only {\"String\": ...} patterns are supported", t->path, field);
    if (!s[0]) return err_set(err, CIS_EINVAL, "%s: %s.pattern: empty string", t->path, field);
    const char *c = jstr(o, "content");
    if (!c) return err_set(err, CIS_EINVAL, "%s: %s.content: expected a string", t->path, field);
    out[0] = xstrdup(s); out[1] = xstrdup(c);
    return 0;
}

static int load_normalizer(tokenizer *t, json_t *n, const char *field, cis_err *err) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = json_is_object(n) ? jstr(n, "type") : NULL;
    if (!ty) return err_set(err, CIS_EINVAL, "%s: %s: expected an object with a \"type\"", t->path, field);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "normalizers");
        if (!json_is_array(a)) return err_set(err, CIS_EINVAL, "%s: %s.normalizers: expected an array", t->path, field);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[128]; snprintf(f, sizeof f, "%s.normalizers[%zu]", field, i);
            if (load_normalizer(t, json_array_get(a, i), f, err)) return -1;
        }
        return 0;
    }
    tok_norm nm = {0};
    if (!strcmp(ty, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) return err_set(err, CIS_EINVAL, "%s: %s.prepend: expected a string", t->path, field);
        nm.type = NORM_PREPEND; nm.a = xstrdup(p);
    } else if (!strcmp(ty, "Replace")) {
        char *ab[2];
        if (replace_pattern(t, n, field, ab, err)) return -1;
        nm.type = NORM_REPLACE; nm.a = ab[0]; nm.b = ab[1];
    } else {
        return err_set(err, CIS_EINVAL, "%s: %s: unsupported normalizer type \"%s\" (supported: Prepend, Replace, Sequence)",
                       t->path, field, ty);
    }
    t->norms = xrealloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *t->norms);
    t->norms[t->n_norms++] = nm;
    return 0;
}

static int prepend_scheme(const tokenizer *t, json_t *o, const char *field, tok_prepend_scheme *out, cis_err *err) {
    const char *ps = jstr(o, "prepend_scheme");
    if (ps) {
        if (!strcmp(ps, "always")) *out = PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) *out = PREPEND_FIRST;
        else if (!strcmp(ps, "never")) *out = PREPEND_NEVER;
        else return err_set(err, CIS_EINVAL, "%s: %s.prepend_scheme: expected always/first/never, got \"%s\"", t->path, field, ps);
    } else {
        *out = jbool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER; /* legacy form */
    }
    return 0;
}

static int replacement_char(const tokenizer *t, json_t *o, const char *field, char out[8], cis_err *err) {
    const char *r = jstr(o, "replacement");
    if (!r) r = "\xe2\x96\x81";
    if (strlen(r) == 0 || strlen(r) > 7) return err_set(err, CIS_EINVAL, "%s: %s.replacement: expected one character", t->path, field);
    strcpy(out, r);
    return 0;
}

static int load_pretok(tokenizer *t, json_t *n, const char *field, cis_err *err) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = json_is_object(n) ? jstr(n, "type") : NULL;
    if (!ty) return err_set(err, CIS_EINVAL, "%s: %s: expected an object with a \"type\"", t->path, field);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "pretokenizers");
        if (!json_is_array(a)) return err_set(err, CIS_EINVAL, "%s: %s.pretokenizers: expected an array", t->path, field);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[128]; snprintf(f, sizeof f, "%s.pretokenizers[%zu]", field, i);
            if (load_pretok(t, json_array_get(a, i), f, err)) return -1;
        }
        return 0;
    }
    tok_pretok st = {0};
    if (!strcmp(ty, "Split")) {
        json_t *p = json_object_get(n, "pattern");
        const char *re = json_is_object(p) ? jstr(p, "Regex") : NULL;
        if (!re) return err_set(err, CIS_EINVAL, "%s: %s.pattern: expected {\"Regex\": ...} (string splits are not supported)", t->path, field);
        st.type = PT_SPLIT;
        st.pattern = tok_split_pattern_from(re);
        if (!st.pattern)
            return err_set(err, CIS_EINVAL, "%s: %s.pattern.Regex: unknown split pattern \"%.200s\" (supported: the Llama-3, GPT-2 and Qwen2 patterns)",
                           t->path, field, re);
        const char *b = jstr(n, "behavior");
        if (!b || strcmp(b, "Isolated"))
            return err_set(err, CIS_EINVAL, "%s: %s.behavior: only \"Isolated\" is supported, got \"%s\"", t->path, field, b ? b : "(none)");
        if (jbool(n, "invert", false)) return err_set(err, CIS_EINVAL, "%s: %s.invert: true is not supported", t->path, field);
    } else if (!strcmp(ty, "ByteLevel")) {
        st.type = PT_BYTELEVEL;
        st.add_prefix_space = jbool(n, "add_prefix_space", true);
        st.use_regex = jbool(n, "use_regex", true);
    } else if (!strcmp(ty, "Metaspace")) {
        st.type = PT_METASPACE;
        if (replacement_char(t, n, field, st.replacement, err) || prepend_scheme(t, n, field, &st.prepend, err)) return -1;
        st.split = jbool(n, "split", true);
    } else {
        return err_set(err, CIS_EINVAL, "%s: %s: unsupported pre_tokenizer type \"%s\" (supported: Split, ByteLevel, Metaspace, Sequence)",
                       t->path, field, ty);
    }
    t->pretoks = xrealloc(t->pretoks, (size_t)(t->n_pretoks + 1) * sizeof *t->pretoks);
    t->pretoks[t->n_pretoks++] = st;
    return 0;
}

static int load_decoder(tokenizer *t, json_t *n, const char *field, cis_err *err) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = json_is_object(n) ? jstr(n, "type") : NULL;
    if (!ty) return err_set(err, CIS_EINVAL, "%s: %s: expected an object with a \"type\"", t->path, field);
    t->has_decoder = true;
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "decoders");
        if (!json_is_array(a)) return err_set(err, CIS_EINVAL, "%s: %s.decoders: expected an array", t->path, field);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[128]; snprintf(f, sizeof f, "%s.decoders[%zu]", field, i);
            if (load_decoder(t, json_array_get(a, i), f, err)) return -1;
        }
        return 0;
    }
    tok_dec d = {0};
    if (!strcmp(ty, "Replace")) {
        char *ab[2];
        if (replace_pattern(t, n, field, ab, err)) return -1;
        d.type = DEC_REPLACE; d.a = ab[0]; d.b = ab[1];
    } else if (!strcmp(ty, "ByteFallback")) {
        d.type = DEC_BYTEFALLBACK;
    } else if (!strcmp(ty, "Fuse")) {
        d.type = DEC_FUSE;
    } else if (!strcmp(ty, "Strip")) {
        const char *c = jstr(n, "content");
        json_t *s0 = json_object_get(n, "start"), *s1 = json_object_get(n, "stop");
        if (!c || !json_is_integer(s0) || !json_is_integer(s1))
            return err_set(err, CIS_EINVAL, "%s: %s: Strip needs content (string), start and stop (integers)", t->path, field);
        d.type = DEC_STRIP; d.a = xstrdup(c);
        d.start = (int)json_integer_value(s0); d.stop = (int)json_integer_value(s1);
    } else if (!strcmp(ty, "ByteLevel")) {
        d.type = DEC_BYTELEVEL;
    } else if (!strcmp(ty, "Metaspace")) {
        char r[8];
        d.type = DEC_METASPACE;
        if (replacement_char(t, n, field, r, err) || prepend_scheme(t, n, field, &d.prepend, err)) return -1;
        d.a = xstrdup(r);
    } else {
        return err_set(err, CIS_EINVAL, "%s: %s: unsupported decoder type \"%s\" (supported: Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace, Sequence)",
                       t->path, field, ty);
    }
    t->decs = xrealloc(t->decs, (size_t)(t->n_decs + 1) * sizeof *t->decs);
    t->decs[t->n_decs++] = d;
    return 0;
}

static void push_ids(int32_t **a, int *n, json_t *ids) {
    for (size_t i = 0; i < json_array_size(ids); i++) {
        *a = xrealloc(*a, (size_t)(*n + 1) * sizeof **a);
        (*a)[(*n)++] = (int32_t)json_integer_value(json_array_get(ids, i));
    }
}

static int load_post(tokenizer *t, json_t *n, const char *field, cis_err *err) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = json_is_object(n) ? jstr(n, "type") : NULL;
    if (!ty) return err_set(err, CIS_EINVAL, "%s: %s: expected an object with a \"type\"", t->path, field);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "processors");
        if (!json_is_array(a)) return err_set(err, CIS_EINVAL, "%s: %s.processors: expected an array", t->path, field);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[128]; snprintf(f, sizeof f, "%s.processors[%zu]", field, i);
            if (load_post(t, json_array_get(a, i), f, err)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
    if (strcmp(ty, "TemplateProcessing"))
        return err_set(err, CIS_EINVAL, "%s: %s: unsupported post_processor type \"%s\" (supported: TemplateProcessing, ByteLevel, Sequence)",
                       t->path, field, ty);
    json_t *single = json_object_get(n, "single"), *sp = json_object_get(n, "special_tokens");
    if (!json_is_array(single)) return err_set(err, CIS_EINVAL, "%s: %s.single: expected an array", t->path, field);
    bool seen_seq = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *it = json_array_get(single, i);
        if (json_object_get(it, "Sequence")) { seen_seq = true; continue; }
        json_t *st = json_object_get(it, "SpecialToken");
        const char *name = st ? jstr(st, "id") : NULL;
        json_t *ent = name && json_is_object(sp) ? json_object_get(sp, name) : NULL;
        json_t *ids = ent ? json_object_get(ent, "ids") : NULL;
        if (!json_is_array(ids))
            return err_set(err, CIS_EINVAL, "%s: %s.single[%zu]: special token \"%s\" has no ids in %s.special_tokens",
                           t->path, field, i, name ? name : "(none)", field);
        for (size_t k = 0; k < json_array_size(ids); k++) {
            json_int_t v = json_integer_value(json_array_get(ids, k));
            if (!json_is_integer(json_array_get(ids, k)) || v < 0 || v > TOK_MAX_ID)
                return err_set(err, CIS_EINVAL, "%s: %s.special_tokens.%s.ids: expected non-negative integers", t->path, field, name);
        }
        if (seen_seq) push_ids(&t->suffix_ids, &t->n_suffix, ids);
        else push_ids(&t->prefix_ids, &t->n_prefix, ids);
    }
    if (!seen_seq) return err_set(err, CIS_EINVAL, "%s: %s.single: no {\"Sequence\"} item", t->path, field);
    return 0;
}

static void set_id_token(tokenizer *t, int32_t id, const char *s) {
    free(t->id2tok[id]);
    t->id2tok[id] = xstrdup(s);
}

static int load_model(tokenizer *t, json_t *root, cis_err *err) {
    json_t *m = json_object_get(root, "model");
    if (!json_is_object(m)) return err_set(err, CIS_EINVAL, "%s: model: missing or not an object", t->path);
    const char *ty = jstr(m, "type");
    if (ty && strcmp(ty, "BPE"))
        return err_set(err, CIS_EINVAL, "%s: model.type: unsupported model \"%s\" (only BPE is supported)", t->path, ty);
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) return err_set(err, CIS_EINVAL, "%s: model.vocab: expected an object of token -> id", t->path);
    if (!ty && !merges) return err_set(err, CIS_EINVAL, "%s: model.type: missing and no merges (not a BPE model)", t->path);
    if (!json_is_array(merges)) return err_set(err, CIS_EINVAL, "%s: model.merges: expected an array", t->path);
    json_t *dr = json_object_get(m, "dropout");
    if (dr && !json_is_null(dr) && json_number_value(dr) > 0)
        return err_set(err, CIS_EINVAL, "%s: model.dropout: BPE dropout is not supported", t->path);
    const char *csp = jstr(m, "continuing_subword_prefix"), *eow = jstr(m, "end_of_word_suffix");
    if ((csp && csp[0]) || (eow && eow[0]))
        return err_set(err, CIS_EINVAL, "%s: model.%s: not supported", t->path, csp && csp[0] ? "continuing_subword_prefix" : "end_of_word_suffix");
    t->byte_fallback = jbool(m, "byte_fallback", false);
    t->fuse_unk = jbool(m, "fuse_unk", false);
    t->ignore_merges = jbool(m, "ignore_merges", false);

    /* vocab */
    int32_t maxid = -1;
    const char *k; json_t *v;
    json_object_foreach(vocab, k, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id > TOK_MAX_ID)
            return err_set(err, CIS_EINVAL, "%s: model.vocab[\"%.64s\"]: expected an id in 0..%d", t->path, k, TOK_MAX_ID);
        if (id > maxid) maxid = (int32_t)id;
    }
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added))
        return err_set(err, CIS_EINVAL, "%s: added_tokens: expected an array", t->path);
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > TOK_MAX_ID || !jstr(a, "content") ||
            !jstr(a, "content")[0])
            return err_set(err, CIS_EINVAL, "%s: added_tokens[%zu]: expected {\"id\": 0..%d, \"content\": non-empty string}", t->path, i, TOK_MAX_ID);
        if (json_integer_value(id) > maxid) maxid = (int32_t)json_integer_value(id);
    }
    t->id_cap = maxid + 1;
    t->id2tok = xcalloc((size_t)t->id_cap + 1, sizeof *t->id2tok);
    t->is_special = xcalloc((size_t)t->id_cap + 1, sizeof *t->is_special);
    t->is_added = xcalloc((size_t)t->id_cap + 1, sizeof *t->is_added);
    tok_strmap_init(&t->vocab, json_object_size(vocab));
    json_object_foreach(vocab, k, v) {
        int32_t id = (int32_t)json_integer_value(v);
        tok_strmap_put(&t->vocab, k, strlen(k), id);
        set_id_token(t, id, k);
    }
    for (int b = 0; b < 256; b++) {
        char name[8]; snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = tok_strmap_get(&t->vocab, name, strlen(name));
    }
    const char *unk = jstr(m, "unk_token");
    t->unk_id = -1;
    if (unk) {
        t->unk_id = tok_strmap_get(&t->vocab, unk, strlen(unk));
        if (t->unk_id < 0) return err_set(err, CIS_EINVAL, "%s: model.unk_token: \"%s\" is not in model.vocab", t->path, unk);
    }

    /* merges */
    tok_pairmap_init(&t->merges, json_array_size(merges));
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *e = json_array_get(merges, i);
        char a[1024], b[1024];
        if (json_is_string(e)) {
            const char *s = json_string_value(e), *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || (size_t)(sp - s) >= sizeof a || strlen(sp + 1) >= sizeof b)
                return err_set(err, CIS_EINVAL, "%s: model.merges[%zu]: expected \"left right\" (one space), got \"%.64s\"", t->path, i, s);
            memcpy(a, s, (size_t)(sp - s)); a[sp - s] = 0;
            strcpy(b, sp + 1);
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1)) && strlen(json_string_value(json_array_get(e, 0))) < sizeof a &&
                   strlen(json_string_value(json_array_get(e, 1))) < sizeof b) {
            strcpy(a, json_string_value(json_array_get(e, 0)));
            strcpy(b, json_string_value(json_array_get(e, 1)));
        } else {
            return err_set(err, CIS_EINVAL, "%s: model.merges[%zu]: expected a \"left right\" string or a [left, right] pair", t->path, i);
        }
        int32_t ia = tok_strmap_get(&t->vocab, a, strlen(a)), ib = tok_strmap_get(&t->vocab, b, strlen(b));
        if (ia < 0 || ib < 0)
            return err_set(err, CIS_EINVAL, "%s: model.merges[%zu]: token \"%.64s\" is not in model.vocab", t->path, i, ia < 0 ? a : b);
        char ab[2048];
        size_t la = strlen(a), lb = strlen(b);
        memcpy(ab, a, la); memcpy(ab + la, b, lb);
        int32_t im = tok_strmap_get(&t->vocab, ab, la + lb);
        if (im < 0)
            return err_set(err, CIS_EINVAL, "%s: model.merges[%zu]: merged token \"%.*s\" is not in model.vocab", t->path, i,
                           (int)(la + lb > 128 ? 128 : la + lb), ab);
        tok_pairmap_put(&t->merges, ia, ib, (int32_t)i, im);
    }

    /* added tokens */
    t->added = xcalloc(json_array_size(added) + 1, sizeof *t->added);
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        tok_added *ad = &t->added[t->n_added++];
        ad->content = xstrdup(jstr(a, "content"));
        ad->match = xstrdup(ad->content);
        ad->len = strlen(ad->content);
        ad->id = (int32_t)json_integer_value(json_object_get(a, "id"));
        ad->special = jbool(a, "special", false);
        ad->lstrip = jbool(a, "lstrip", false);
        ad->rstrip = jbool(a, "rstrip", false);
        ad->single_word = jbool(a, "single_word", false);
        ad->normalized = jbool(a, "normalized", !ad->special);
        set_id_token(t, ad->id, ad->content);
        t->is_added[ad->id] = true;
        t->is_special[ad->id] = ad->special;
    }
    return 0;
}

/* a token field of tokenizer_config.json: "str" or {"content": "str"} */
static const char *config_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return jstr(v, "content");
    return NULL;
}

static int load_config(tokenizer *t, const char *cfg_path, cis_err *err) {
    t->bos_id = t->n_prefix ? t->prefix_ids[0] : -1;
    t->eos_id = t->n_suffix ? t->suffix_ids[t->n_suffix - 1] : -1;
    t->pad_id = -1;
    struct stat sb;
    if (stat(cfg_path, &sb) != 0) return 0;
    json_error_t je;
    json_t *cfg = json_load_file(cfg_path, 0, &je);
    if (!cfg) return err_set(err, CIS_EINVAL, "%s: line %d: %s", cfg_path, je.line, je.text);
    int rc = 0;
    const char *names[3] = {"bos_token", "eos_token", "pad_token"};
    int32_t *dst[3] = {&t->bos_id, &t->eos_id, &t->pad_id};
    for (int i = 0; i < 3; i++) {
        const char *s = config_token(cfg, names[i]);
        if (!s) continue;
        int32_t id = tokenizer_token_to_id(t, s);
        if (id < 0) { /* only an error when add_bos_token / add_eos_token needs it (below) */
            LOG_W("%s: %s: \"%s\" is not a token of the vocabulary; ignored", cfg_path, names[i], s);
            *dst[i] = -1;
            continue;
        }
        *dst[i] = id;
    }
    json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(ab)) {
        t->n_prefix = 0;
        if (json_is_true(ab)) {
            if (t->bos_id < 0) { rc = err_set(err, CIS_EINVAL, "%s: add_bos_token: true but bos_token is missing or not in the vocabulary", cfg_path); goto out; }
            t->prefix_ids = xrealloc(t->prefix_ids, sizeof *t->prefix_ids);
            t->prefix_ids[0] = t->bos_id; t->n_prefix = 1;
        }
    }
    if (json_is_boolean(ae)) {
        t->n_suffix = 0;
        if (json_is_true(ae)) {
            if (t->eos_id < 0) { rc = err_set(err, CIS_EINVAL, "%s: add_eos_token: true but eos_token is missing or not in the vocabulary", cfg_path); goto out; }
            t->suffix_ids = xrealloc(t->suffix_ids, sizeof *t->suffix_ids);
            t->suffix_ids[0] = t->eos_id; t->n_suffix = 1;
        }
    }
out:
    json_decref(cfg);
    return rc;
}

int tokenizer_load(const char *path, tokenizer **out, cis_err *err) {
    *out = NULL;
    struct stat sb;
    char file[512], cfg[600];
    if (stat(path, &sb) != 0) return err_set(err, CIS_EIO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/tokenizer.json", path);
    else snprintf(file, sizeof file, "%s", path);
    const char *slash = strrchr(file, '/');
    if (slash) snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", (int)(slash - file), file);
    else snprintf(cfg, sizeof cfg, "tokenizer_config.json");

    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (!root) return err_set(err, CIS_EINVAL, "%s: line %d: %s", file, je.line, je.text);
    tokenizer *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    snprintf(t->path, sizeof t->path, "%s", file);
    gpt2_alphabet(t);
    int rc = -1;
    if (!json_is_object(root)) { err_set(err, CIS_EINVAL, "%s: expected a JSON object", file); goto done; }
    if (load_model(t, root, err)) goto done;
    if (load_normalizer(t, json_object_get(root, "normalizer"), "normalizer", err)) goto done;
    /* normalized added tokens are matched (and decoded) in their normalized form, as `tokenizers` does */
    for (int i = 0; i < t->n_added; i++) {
        tok_added *ad = &t->added[i];
        if (!ad->normalized || !t->n_norms) continue;
        free(ad->match);
        ad->match = tok_normalize(t, ad->content, strlen(ad->content), &ad->len);
        set_id_token(t, ad->id, ad->match);
    }
    for (int i = 0; i < t->n_added; i++) t->added_first[t->added[i].normalized][(unsigned char)t->added[i].match[0]] = true;
    if (load_pretok(t, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", err)) goto done;
    if (load_decoder(t, json_object_get(root, "decoder"), "decoder", err)) goto done;
    if (load_post(t, json_object_get(root, "post_processor"), "post_processor", err)) goto done;
    t->kind = TOKENIZER_SENTENCEPIECE_BPE;
    for (int i = 0; i < t->n_pretoks; i++) if (t->pretoks[i].type == PT_BYTELEVEL) t->kind = TOKENIZER_BYTE_LEVEL_BPE;
    for (int i = 0; i < t->n_prefix; i++)
        if (t->prefix_ids[i] >= t->id_cap) { err_set(err, CIS_EINVAL, "%s: post_processor: id %d outside the vocabulary", file, t->prefix_ids[i]); goto done; }
    for (int i = 0; i < t->n_suffix; i++)
        if (t->suffix_ids[i] >= t->id_cap) { err_set(err, CIS_EINVAL, "%s: post_processor: id %d outside the vocabulary", file, t->suffix_ids[i]); goto done; }
    if (load_config(t, cfg, err)) goto done;
    t->cache = xcalloc(TOK_CACHE_SLOTS, sizeof *t->cache);
    rc = 0;
done:
    json_decref(root);
    if (rc) { tokenizer_free(t); return -1; }
    *out = t;
    return 0;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    tok_strmap_clear(&t->vocab);
    tok_pairmap_clear(&t->merges);
    if (t->id2tok) for (int32_t i = 0; i < t->id_cap; i++) free(t->id2tok[i]);
    free(t->id2tok); free(t->is_special); free(t->is_added);
    for (int i = 0; i < t->n_norms; i++) { free(t->norms[i].a); free(t->norms[i].b); }
    free(t->norms); free(t->pretoks);
    for (int i = 0; i < t->n_decs; i++) { free(t->decs[i].a); free(t->decs[i].b); }
    free(t->decs);
    for (int i = 0; i < t->n_added; i++) { free(t->added[i].content); free(t->added[i].match); }
    free(t->added);
    free(t->prefix_ids); free(t->suffix_ids);
    tok_cache_clear(t);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
