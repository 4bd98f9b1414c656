/* test_tokenizer.c - unit tests of the tokenizer (worker/engine/tokenizer.h) on hand-written tiny
 * tokenizer.json files with known merges, byte fallback, added tokens, BOS/EOS rules, invalid
 * UTF-8 and malformed files. With arguments it is the C side of test_tokenizer_parity.py:
 *   test_tokenizer encode DIR [--special]  stdin: JSON array of strings; stdout: JSON array whose
 *                                          items are id arrays, or {"error": msg}. When stdin does
 *                                          not start with '[': one text per line, one line of
 *                                          space-separated ids (or "error: msg") per text
 *   test_tokenizer decode DIR [--skip]     stdin: JSON array of id arrays; stdout: JSON array of strings
 *   test_tokenizer info DIR                stdout: {"kind", "vocab_size", "bos", "eos", "pad", "unk"}
 *   test_tokenizer bench DIR FILE          encodes FILE as one text; prints token count, an id
 *                                          checksum and bytes/s (JSON) */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/testlib.h"
#include "common/util.h"
#include "worker/engine/tokenizer.h"
#include "worker/engine/tokenizer_internal.h"
#include "worker/engine/utf8.h"

/* ---------------- tool mode ---------------- */
static int tool(int argc, char **argv) {
    cis_err err = {0};
    tokenizer *t;
    if (argc < 3) { fprintf(stderr, "usage: %s encode|decode|info|bench DIR ...\n", argv[0]); return 2; }
    if (tokenizer_load(argv[2], &t, &err)) { fprintf(stderr, "load: %s\n", err.msg); return 1; }
    bool flag = argc > 3 && (!strcmp(argv[3], "--special") || !strcmp(argv[3], "--skip"));
    if (!strcmp(argv[1], "info")) {
        json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "kind", tokenizer_kind_name(tokenizer_get_kind(t)),
                              "vocab_size", (int)tokenizer_vocab_size(t), "bos", (int)tokenizer_bos_id(t),
                              "eos", (int)tokenizer_eos_id(t), "pad", (int)tokenizer_pad_id(t), "unk", (int)tokenizer_unk_id(t));
        json_dumpf(o, stdout, 0); putchar('\n');
        json_decref(o); tokenizer_free(t);
        return 0;
    }
    if (!strcmp(argv[1], "bench") && argc > 3) {
        size_t len; char *txt = read_file(argv[3], &len, &err);
        if (!txt) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t0 = mono_sec();
        int32_t *ids; size_t n;
        if (tokenizer_encode(t, txt, len, false, &ids, &n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double dt = mono_sec() - t0;
        uint64_t h = 0; /* checksum of the ids: sum of (i + 1) * id mod 2^61 - 1 */
        for (size_t i = 0; i < n; i++) h = (h + (uint64_t)(i + 1) % 2305843009213693951ull * (uint64_t)ids[i]) % 2305843009213693951ull;
        printf("{\"bytes\": %zu, \"tokens\": %zu, \"checksum\": %llu, \"seconds\": %.4f, \"mb_per_s\": %.3f}\n", len, n,
               (unsigned long long)h, dt, len / dt / 1e6);
        free(ids); free(txt); tokenizer_free(t);
        return 0;
    }
    size_t cap = 1 << 16, len = 0, r;
    char *all = xmalloc(cap);
    while ((r = fread(all + len, 1, cap - len - 1, stdin)) > 0) { len += r; if (len + 1 == cap) { cap *= 2; all = xrealloc(all, cap); } }
    all[len] = 0;
    size_t p0 = 0;
    while (p0 < len && (all[p0] == ' ' || all[p0] == '\n' || all[p0] == '\t' || all[p0] == '\r')) p0++;
    if (!strcmp(argv[1], "encode") && (p0 == len || all[p0] != '[')) { /* lines mode */
        for (size_t s = 0; s < len;) {
            size_t e = s;
            while (e < len && all[e] != '\n') e++;
            int32_t *ids; size_t n;
            if (tokenizer_encode(t, all + s, e - s, flag, &ids, &n, &err)) printf("error: %s\n", err.msg);
            else { for (size_t k = 0; k < n; k++) printf("%s%d", k ? " " : "", ids[k]); putchar('\n'); free(ids); }
            s = e + 1;
        }
        free(all); tokenizer_free(t);
        return 0;
    }
    json_error_t je;
    json_t *in = json_loadb(all, len, JSON_ALLOW_NUL, &je);
    free(all);
    if (!json_is_array(in)) { fprintf(stderr, "stdin: expected a JSON array (%s)\n", je.text); return 1; }
    json_t *outj = json_array();
    for (size_t i = 0; i < json_array_size(in); i++) {
        json_t *it = json_array_get(in, i);
        if (!strcmp(argv[1], "encode")) {
            int32_t *ids; size_t n;
            if (tokenizer_encode(t, json_string_value(it), json_string_length(it), flag, &ids, &n, &err)) {
                json_array_append_new(outj, json_pack("{s:s}", "error", err.msg));
                continue;
            }
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++) json_array_append_new(a, json_integer(ids[k]));
            json_array_append_new(outj, a);
            free(ids);
        } else {
            size_t n = json_array_size(it);
            int32_t *ids = xmalloc((n + 1) * sizeof *ids);
            for (size_t k = 0; k < n; k++) ids[k] = (int32_t)json_integer_value(json_array_get(it, k));
            char *s; size_t sl;
            tokenizer_decode_n(t, ids, n, flag, &s, &sl);
            json_array_append_new(outj, json_stringn(s, sl));
            free(s); free(ids);
        }
    }
    json_dumpf(outj, stdout, JSON_ENSURE_ASCII); putchar('\n');
    json_decref(outj); json_decref(in); tokenizer_free(t);
    return 0;
}

/* ---------------- fixtures ---------------- */
static char tmpdir[256];

static void write_text(const char *dir, const char *name, const char *text) {
    char p[512]; cis_err err;
    mkdir_p(dir, &err);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CIS_ASSERT(write_file_atomic(p, text, strlen(text), &err) == 0);
}

/* a byte-level BPE with the Llama-3 split regex; ids: h e l o Ġ w r d 0..7, merges below */
static const char *BL_VOCAB =
    "{\"h\":0,\"e\":1,\"l\":2,\"o\":3,\"\\u0120\":4,\"w\":5,\"r\":6,\"d\":7,\"he\":8,\"ll\":9,\"hell\":10,\"hello\":11,"
    "\"\\u0120w\":12,\"'\":13,\"s\":14,\"'s\":15,\"1\":16,\"2\":17,\"3\":18,\"4\":19,\"\\u010a\":20,\"\\u0120world\":21,\"or\":22}";
static const char *BL_MERGES = "[\"h e\", [\"l\", \"l\"], \"he ll\", \"hell o\", \"\\u0120 w\", \"' s\", \"o r\"]";

static char *bytelevel_json(bool ignore_merges, const char *added, const char *post) {
    return xasprintf(
        "{\"version\":\"1.0\",\"added_tokens\":%s,\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
        "\"post_processor\":%s,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
        "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":%s,\"merges\":%s}}",
        added, post, ignore_merges ? "true" : "false", BL_VOCAB, BL_MERGES);
}

/* a SentencePiece-style BPE as Llama-2: <unk> <s> </s>, <0x00>..<0xFF> at 3..258, then pieces */
static char *sp_json(const char *normalizer, const char *pretok, const char *decoder) {
    char *vocab = xstrdup("{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (int b = 0; b < 256; b++) { char *v = xasprintf("%s,\"<0x%02X>\":%d", vocab, b, 3 + b); free(vocab); vocab = v; }
    char *v = xasprintf("%s,\"\\u2581\":259,\"a\":260,\"b\":261,\"\\u2581a\":262,\"ab\":263,\"\\u2581ab\":264,\"c\":265}", vocab);
    free(vocab);
    char *j = xasprintf(
        "{\"version\":\"1.0\",\"added_tokens\":["
        "{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":1,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":2,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
        "\"normalizer\":%s,\"pre_tokenizer\":%s,"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":%s,"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
        "\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":%s,\"merges\":[\"\\u2581 a\",\"a b\",\"\\u2581a b\"]}}",
        normalizer, pretok, decoder, v);
    free(v);
    return j;
}
static const char *SP_NORM = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
                             "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]}";
static const char *SP_DEC = "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
                            "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}";

static tokenizer *load_json(const char *sub, const char *json, const char *config) {
    char dir[512]; cis_err err = {0};
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    write_text(dir, "tokenizer.json", json);
    if (config) write_text(dir, "tokenizer_config.json", config);
    tokenizer *t = NULL;
    if (tokenizer_load(dir, &t, &err)) fprintf(stderr, "  load %s: %s\n", sub, err.msg);
    return t;
}

/* encode and compare with the expected ids (terminated by -99) */
static bool enc_is(tokenizer *t, const char *text, bool special, const int32_t *want) {
    int32_t *ids; size_t n; cis_err err = {0};
    if (tokenizer_encode(t, text, strlen(text), special, &ids, &n, &err)) { fprintf(stderr, "  encode: %s\n", err.msg); return false; }
    size_t wn = 0;
    while (want[wn] != -99) wn++;
    bool ok = n == wn && !memcmp(ids, want, n * sizeof *ids);
    if (!ok) {
        fprintf(stderr, "  \"%s\": got [", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : "", ids[i]);
        fprintf(stderr, "]\n");
    }
    free(ids);
    return ok;
}

static char *dec(tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    char *s; tokenizer_decode(t, ids, n, skip, &s);
    return s;
}

/* ---------------- tests ---------------- */
static void test_utf8_and_classes(void) {
    uint32_t cp;
    CHECK_EQ_INT(utf8_decode("\xC3\xA9", 2, &cp), 2); CHECK_EQ_INT(cp, 0xE9);
    CHECK_EQ_INT(utf8_decode("\xF0\x9F\x98\x80", 4, &cp), 4); CHECK_EQ_INT(cp, 0x1F600);
    CHECK_EQ_INT(utf8_decode("\xC0\x80", 2, &cp), -1);       /* overlong */
    CHECK_EQ_INT(utf8_decode("\xED\xA0\x80", 3, &cp), -1);   /* surrogate */
    CHECK_EQ_INT(utf8_decode("\xE2\x82", 2, &cp), -1);       /* truncated */
    CHECK_EQ_INT(utf8_decode("\xF4\x90\x80\x80", 4, &cp), -1); /* > U+10FFFF */
    size_t bad = 0;
    CHECK(!utf8_validate("ab\xFF" "c", 4, &bad)); CHECK_EQ_INT(bad, 2);
    CHECK(unicode_is_letter(0xE9) && unicode_is_letter(0x4E2D) && unicode_is_letter(0x3042));
    CHECK(!unicode_is_letter('1') && !unicode_is_letter(0x1F600) && !unicode_is_letter(0x301));
    CHECK(unicode_is_number('7') && unicode_is_number(0x0663) && unicode_is_number(0x2163) && unicode_is_number(0xBD));
    CHECK(unicode_is_space(0x3000) && unicode_is_space(0xA0) && unicode_is_space('\t') && !unicode_is_space(0x200B));
    /* \w: letters, marks (Devanagari vowel sign, virama), decimal digits, '_', ZWJ; not '²' or '-' */
    CHECK(unicode_is_word('_') && unicode_is_word(0x93F) && unicode_is_word(0x94D) && unicode_is_word(0x200D) && unicode_is_word(0x0663));
    CHECK(!unicode_is_word(0xB2) && !unicode_is_word('-') && !unicode_is_word(0x1F600));
}

/* split a string with a pattern, joined by '|' */
static char *split_str(tok_split_pattern p, const char *s) {
    uint32_t cps[256]; size_t offs[257], n = 0;
    for (size_t i = 0; s[i];) { int l = utf8_decode(s + i, strlen(s + i), &cps[n]); offs[n++] = i; i += (size_t)l; }
    offs[n] = strlen(s);
    char *o = xcalloc(1024, 1);
    for (size_t i = 0; i < n;) {
        size_t j = tok_split_match(p, cps, n, i);
        if (i) strcat(o, "|");
        strncat(o, s + offs[i], offs[j] - offs[i]);
        i = j;
    }
    return o;
}

static void test_split_patterns(void) {
    char *s;
    s = split_str(SPLIT_LLAMA3, "I'M here  now\n\n  x 12345!!\n"); CHECK_EQ_STR(s, "I|'M| here| | now|\n\n| | x| |123|45|!!\n"); free(s);
    s = split_str(SPLIT_LLAMA3, "a,b  \tc ...;"); CHECK_EQ_STR(s, "a|,b|  |\tc| ...;"); free(s);
    s = split_str(SPLIT_GPT2, "I'M here  now\n\n 12345!!"); CHECK_EQ_STR(s, "I|'|M| here| | now|\n\n| 12345|!!"); free(s);
    s = split_str(SPLIT_QWEN2, "x123"); CHECK_EQ_STR(s, "x|1|2|3"); free(s);
    CHECK_EQ_INT(tok_split_pattern_from("\\s+"), 0);
}

static void test_bytelevel_merges(void) {
    char *j = bytelevel_json(false, "[]", "null");
    tokenizer *t = load_json("bl", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    CHECK_EQ_INT(tokenizer_get_kind(t), TOKENIZER_BYTE_LEVEL_BPE);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 23);
    CHECK(enc_is(t, "hello world", false, (int32_t[]){11, 12, 22, 2, 7, -99}));  /* Ġworld is not reached without ignore_merges */
    CHECK(enc_is(t, "he's", false, (int32_t[]){8, 15, -99}));
    CHECK(enc_is(t, "1234", false, (int32_t[]){16, 17, 18, 19, -99}));
    CHECK(enc_is(t, "", false, (int32_t[]){-99}));
    int32_t ids[] = {11, 12, 22, 2, 7, 20};
    char *s = dec(t, ids, 6, false);
    CHECK_EQ_STR(s, "hello world\n");
    free(s);
    CHECK_EQ_INT(tokenizer_token_to_id(t, "hello"), 11);
    CHECK_EQ_STR(tokenizer_id_to_token(t, 12), "\xC4\xA0w");
    CHECK(tokenizer_id_to_token(t, 999) == NULL);
    tokenizer_free(t);

    j = bytelevel_json(true, "[]", "null");
    t = load_json("bl_ignore", j, NULL);
    free(j);
    CHECK(t);
    if (t) { CHECK(enc_is(t, "hello world", false, (int32_t[]){11, 21, -99})); tokenizer_free(t); }
}

static void test_added_and_template(void) {
    const char *added =
        "[{\"id\":30,\"content\":\"<|bos|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        " {\"id\":31,\"content\":\"<|eot|>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,\"normalized\":false,\"special\":true},"
        " {\"id\":32,\"content\":\"wor\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":false}]";
    const char *post =
        "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},"
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|bos|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"pair\":[],\"special_tokens\":{\"<|bos|>\":{\"id\":\"<|bos|>\",\"ids\":[30],\"tokens\":[\"<|bos|>\"]}}}]}";
    char *j = bytelevel_json(false, added, post);
    tokenizer *t = load_json("bl_added", j, NULL);
    CHECK(t);
    if (t) {
        CHECK_EQ_INT(tokenizer_vocab_size(t), 33);
        CHECK_EQ_INT(tokenizer_bos_id(t), 30);
        CHECK_EQ_INT(tokenizer_eos_id(t), -1);
        CHECK(enc_is(t, "hello", true, (int32_t[]){30, 11, -99}));
        /* lstrip/rstrip eat the spaces around <|eot|> */
        CHECK(enc_is(t, "hello <|eot|> hello", false, (int32_t[]){11, 31, 11, -99}));
        /* single_word: "wor" alone is the added token, inside "world" it is not */
        CHECK(enc_is(t, "wor", false, (int32_t[]){32, -99}));
        CHECK(enc_is(t, "world", false, (int32_t[]){5, 22, 2, 7, -99}));
        CHECK(tokenizer_is_special(t, 31) && !tokenizer_is_special(t, 32) && !tokenizer_is_special(t, 11));
        int32_t ids[] = {30, 11, 31, 11};
        char *s = dec(t, ids, 4, true); CHECK_EQ_STR(s, "hellohello"); free(s);
        s = dec(t, ids, 4, false); CHECK_EQ_STR(s, "<|bos|>hello<|eot|>hello"); free(s);
        tokenizer_free(t);
    }
    /* tokenizer_config.json overrides the template: no BOS, EOS added */
    t = load_json("bl_cfg", j, "{\"add_bos_token\": false, \"add_eos_token\": true, \"bos_token\": \"<|bos|>\", "
                               "\"eos_token\": {\"content\": \"<|eot|>\"}, \"pad_token\": null}");
    CHECK(t);
    if (t) {
        CHECK_EQ_INT(tokenizer_eos_id(t), 31);
        CHECK(enc_is(t, "hello", true, (int32_t[]){11, 31, -99}));
        tokenizer_free(t);
    }
    free(j);
}

static void test_sentencepiece(void) {
    char *j = sp_json(SP_NORM, "null", SP_DEC);
    tokenizer *t = load_json("sp", j, "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
    free(j);
    CHECK(t);
    if (!t) return;
    CHECK_EQ_INT(tokenizer_get_kind(t), TOKENIZER_SENTENCEPIECE_BPE);
    CHECK_EQ_INT(tokenizer_bos_id(t), 1); CHECK_EQ_INT(tokenizer_eos_id(t), 2); CHECK_EQ_INT(tokenizer_unk_id(t), 0);
    CHECK(enc_is(t, "ab ab", true, (int32_t[]){1, 264, 264, -99}));
    CHECK(enc_is(t, "ab  b", false, (int32_t[]){264, 259, 259, 261, -99}));
    /* é is not in the vocab: byte fallback to <0xC3><0xA9> */
    CHECK(enc_is(t, "a\xC3\xA9", false, (int32_t[]){262, 3 + 0xC3, 3 + 0xA9, -99}));
    /* added tokens split before normalization, and each piece gets its own "▁" */
    CHECK(enc_is(t, "a</s>b", false, (int32_t[]){262, 2, 259, 261, -99}));
    int32_t ids[] = {1, 262, 3 + 0xC3, 3 + 0xA9, 264, 2};
    char *s = dec(t, ids, 6, true); CHECK_EQ_STR(s, "a\xC3\xA9 ab"); free(s);
    int32_t bad[] = {262, 3 + 0xC3, 265};  /* a lone lead byte decodes to U+FFFD */
    s = dec(t, bad, 3, true); CHECK_EQ_STR(s, "a\xEF\xBF\xBD" "c"); free(s);
    tokenizer_free(t);

    /* the Metaspace form (newer Llama-2/Mistral files): same ids, no BOS without a template rule */
    const char *ms = "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":false}";
    j = sp_json("null", ms, ms);
    t = load_json("sp_meta", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    CHECK(enc_is(t, "ab ab", true, (int32_t[]){1, 264, 264, -99}));
    CHECK(enc_is(t, "<s>ab", false, (int32_t[]){1, 263, -99})); /* prepend_scheme first: not after a special token */
    int32_t ids2[] = {264, 264};
    s = dec(t, ids2, 2, false); CHECK_EQ_STR(s, "ab ab"); free(s);
    tokenizer_free(t);
}

static void test_unk_without_fallback(void) {
    char *j = sp_json(SP_NORM, "null", SP_DEC);
    /* turn byte_fallback off: unknown characters become one fused <unk> */
    char *p = strstr(j, "\"byte_fallback\":true");
    memcpy(p, "\"byte_fallback\":0   ", 20);
    tokenizer *t = load_json("sp_unk", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    CHECK(enc_is(t, "a\xC3\xA9\xC3\xA9" "b", false, (int32_t[]){262, 0, 261, -99}));
    tokenizer_free(t);
}

static void test_invalid_utf8(void) {
    char *j = bytelevel_json(false, "[]", "null");
    tokenizer *t = load_json("bl_utf8", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    int32_t *ids = NULL; size_t n = 0; cis_err err = {0};
    CHECK_EQ_INT(tokenizer_encode(t, "he\xC3(llo", 7, false, &ids, &n, &err), -1);
    CHECK(strstr(err.msg, "invalid UTF-8") && strstr(err.msg, "offset 2"));
    CHECK(ids == NULL);
    CHECK_EQ_INT(tokenizer_encode(t, "\xED\xA0\x80", 3, false, &ids, &n, &err), -1);
    /* embedded NUL is valid input (its byte has no token here and there is no unk: dropped) */
    CHECK_EQ_INT(tokenizer_encode(t, "h\0h", 3, false, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    free(ids);
    tokenizer_free(t);
}

/* load must fail with a message that contains want */
static void expect_load_error(const char *sub, const char *json, const char *want) {
    char dir[512]; cis_err err = {0};
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    write_text(dir, "tokenizer.json", json);
    tokenizer *t = NULL;
    int rc = tokenizer_load(dir, &t, &err);
    CHECK_MSG(rc == -1 && t == NULL && strstr(err.msg, want) && strstr(err.msg, "tokenizer.json"),
              "%s: rc %d, message \"%s\", wanted \"%s\"", sub, rc, err.msg, want);
    if (t) tokenizer_free(t);
}

static void test_malformed(void) {
    expect_load_error("m1", "{\"added_tokens\": []}", "model");
    expect_load_error("m2", "{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}}", "model.vocab");
    expect_load_error("m3", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a z\"]}}", "model.merges[0]");
    expect_load_error("m4", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", "merged token");
    expect_load_error("m5", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "WordPiece");
    expect_load_error("m6", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "model.type");
    expect_load_error("m7", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab");
    expect_load_error("m8", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                            "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}}", "pre_tokenizer.pattern.Regex");
    expect_load_error("m9", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"}}", "NFKC");
    expect_load_error("m10", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [", "line");
    expect_load_error("m11", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [42]}}", "model.merges[0]");
    expect_load_error("m12", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}", "model.unk_token");
    expect_load_error("m13", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 1}]}", "added_tokens[0]");
    expect_load_error("m14", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"WordPiece\"}}", "decoder");
    expect_load_error("m15", "[1, 2]", "JSON object");
    cis_err err = {0}; tokenizer *t = NULL;
    CHECK_EQ_INT(tokenizer_load("/nonexistent/tok", &t, &err), -1);
    CHECK(strstr(err.msg, "/nonexistent/tok") != NULL);
    /* a bad tokenizer_config.json names itself: a BOS to add that is not in the vocabulary */
    char dir[512]; snprintf(dir, sizeof dir, "%s/badcfg", tmpdir);
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": \"<nope>\", \"add_bos_token\": true}");
    CHECK_EQ_INT(tokenizer_load(dir, &t, &err), -1);
    CHECK(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "bos_token"));
    /* ... an unknown pad token only warns; broken JSON is an error */
    write_text(dir, "tokenizer_config.json", "{\"pad_token\": \"<nope>\"}");
    CHECK_EQ_INT(tokenizer_load(dir, &t, &err), 0);
    if (t) { CHECK_EQ_INT(tokenizer_pad_id(t), -1); tokenizer_free(t); t = NULL; }
    write_text(dir, "tokenizer_config.json", "{\"pad_token\": ");
    CHECK_EQ_INT(tokenizer_load(dir, &t, &err), -1);
    CHECK(strstr(err.msg, "tokenizer_config.json") != NULL);
}

/* truncated files never load and never crash; random bytes either encode (valid UTF-8) or fail
 * cleanly; random ids (negative, out of range, byte tokens) always decode */
static void test_robustness(void) {
    char *j = sp_json(SP_NORM, "null", SP_DEC);
    size_t L = strlen(j);
    char dir[512]; snprintf(dir, sizeof dir, "%s/trunc", tmpdir);
    int loaded = 0;
    for (int k = 1; k < 60; k++) {
        size_t cut = L * (size_t)k / 60;
        char save = j[cut]; j[cut] = 0;
        write_text(dir, "tokenizer.json", j);
        j[cut] = save;
        tokenizer *t = NULL; cis_err err = {0};
        if (tokenizer_load(dir, &t, &err) == 0) { loaded++; tokenizer_free(t); }
        else CHECK(strstr(err.msg, "tokenizer.json") != NULL);
    }
    CHECK_EQ_INT(loaded, 0);
    tokenizer *t = load_json("robust", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    uint64_t x = 88172645463325252ull;
    int ok = 0, bad = 0;
    for (int it = 0; it < 2000; it++) {
        unsigned char buf[48]; size_t n = (size_t)(it % 48);
        for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (unsigned char)(it % 3 ? (x % 128) : x); }
        int32_t *ids = NULL; size_t nid = 0; cis_err err = {0};
        bool valid = utf8_validate((const char *)buf, n, NULL);
        int rc = tokenizer_encode(t, (const char *)buf, n, true, &ids, &nid, &err);
        CHECK_EQ_INT(rc, valid ? 0 : -1);
        if (rc == 0) {
            ok++;
            char *s; size_t sl;
            tokenizer_decode_n(t, ids, nid, true, &s, &sl);
            /* the decoder drops the one leading space that the normalizer prepended */
            CHECK_MSG(sl == n && !memcmp(s, buf, n), "round trip of %zu bytes", n);
            free(s);
        } else bad++;
        free(ids);
        int32_t rid[8];
        for (int i = 0; i < 8; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; rid[i] = (int32_t)(x % 600) - 100; }
        char *s; tokenizer_decode(t, rid, 8, it & 1, &s); free(s);
    }
    CHECK(ok > 100 && bad > 100);
    tokenizer_free(t);
}

/* one tokenizer shared by 4 threads (the word cache is the only shared mutable state) gives the
 * same ids as a single thread */
typedef struct mt_arg { tokenizer *t; const char **texts; int n; int32_t **ids; size_t *nid; } mt_arg;
static void *mt_worker(void *p) {
    mt_arg *a = p;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < a->n; i++) {
            int32_t *ids; size_t n; cis_err err;
            if (tokenizer_encode(a->t, a->texts[i], strlen(a->texts[i]), true, &ids, &n, &err)) return (void *)1;
            bool same = n == a->nid[i] && !memcmp(ids, a->ids[i], n * sizeof *ids);
            free(ids);
            if (!same) return (void *)1;
        }
    return NULL;
}

static void test_threads(void) {
    char *j = bytelevel_json(false, "[]", "null");
    tokenizer *t = load_json("bl_mt", j, NULL);
    free(j);
    CHECK(t);
    if (!t) return;
    const char *texts[] = {"hello world", "he's 1234 hello", "world world hello\n\n", "  spaces   and\ttabs", "h e l l o"};
    int n = 5;
    int32_t *ids[5]; size_t nid[5];
    for (int i = 0; i < n; i++) { cis_err err; CHECK_EQ_INT(tokenizer_encode(t, texts[i], strlen(texts[i]), true, &ids[i], &nid[i], &err), 0); }
    pthread_t th[4];
    mt_arg a = {t, texts, n, ids, nid};
    for (int k = 0; k < 4; k++) pthread_create(&th[k], NULL, mt_worker, &a);
    for (int k = 0; k < 4; k++) { void *r; pthread_join(th[k], &r); CHECK(r == NULL); }
    for (int i = 0; i < n; i++) free(ids[i]);
    tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc > 1) return tool(argc, argv);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_tok_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    RUN(test_utf8_and_classes);
    RUN(test_split_patterns);
    RUN(test_bytelevel_merges);
    RUN(test_added_and_template);
    RUN(test_sentencepiece);
    RUN(test_unk_without_fallback);
    RUN(test_invalid_utf8);
    RUN(test_malformed);
    RUN(test_robustness);
    RUN(test_threads);
    char cmd[600]; snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
