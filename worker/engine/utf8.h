/* utf8.h - strict UTF-8 decoding/encoding and the Unicode classes the tokenizer's split regexes
 * need: letters (\p{L}), numbers (\p{N}) and white space (\s, the White_Space property).
 * The L and N tables are generated (unicode_tables.c, by gen_unicode_tables.py). */
#ifndef CISWEEP_ENGINE_UTF8_H
#define CISWEEP_ENGINE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* utf8_decode: decode the code point starting at s[0] (n bytes available, n >= 1) into *cp.
 * Returns its byte length 1..4, or -1 for an invalid sequence (truncated, bad continuation,
 * overlong, surrogate, above U+10FFFF). */
int utf8_decode(const char *s, size_t n, uint32_t *cp);
/* utf8_validate: true when s[0..n) is valid UTF-8; otherwise false and *bad_off (may be NULL)
 * gets the byte offset of the first invalid sequence. */
bool utf8_validate(const char *s, size_t n, size_t *bad_off);
/* utf8_encode: write cp (<= U+10FFFF) to out (>= 4 bytes); returns the byte count 1..4. */
int utf8_encode(uint32_t cp, char *out);
/* utf8_len1: byte length of a sequence from its lead byte (1 for continuation/invalid bytes). */
int utf8_len1(unsigned char lead);

bool unicode_is_letter(uint32_t cp); /* general category L* */
bool unicode_is_number(uint32_t cp); /* general category N* */
bool unicode_is_space(uint32_t cp);  /* White_Space property (what \s matches in the HF regexes) */
bool unicode_is_word(uint32_t cp);   /* \w of Rust's regex crate: Alphabetic, M, Nd, Pc, Join_Control */

#endif
