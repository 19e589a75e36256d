// SPDX-License-Identifier: MIT
/*
 * Row generation for the benchmark. Values are written by hand into the
 * row's buffer (no snprintf) so that making a row costs far less than
 * storing it: the load threads share the CPU with the server they measure.
 * The lists below give names, e-mail addresses and dates of realistic
 * lengths, about 125 bytes of values a row.
 */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

const char *const rows_columns[ROWS_NCOLS] = {
    "contact_key",
    "email",
    "name",
    "surname",
    "gsm",
    "email_permission",
    "contact_status",
    "birth_date",
    "gender",
};

static const char *const rows_first[32] = {
    "ayse",
    "fatma",
    "zeynep",
    "elif",
    "emine",
    "merve",
    "hatice",
    "ozlem",
    "mehmet",
    "mustafa",
    "ahmet",
    "ali",
    "huseyin",
    "hasan",
    "ibrahim",
    "ismail",
    "maria",
    "anna",
    "sophie",
    "charlotte",
    "olivia",
    "emma",
    "isabella",
    "amelia",
    "james",
    "william",
    "benjamin",
    "alexander",
    "sebastian",
    "nicholas",
    "christopher",
    "jonathan",
};

static const char *const rows_last[32] = {
    "yilmaz",
    "kaya",
    "demir",
    "sahin",
    "celik",
    "yildiz",
    "yildirim",
    "ozturk",
    "aydin",
    "ozdemir",
    "arslan",
    "dogan",
    "kilic",
    "aslan",
    "cetin",
    "kara",
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thompson",
};

static const char *const rows_domain[8] = {
    "mail.example.com",
    "customers.example.org",
    "example-mail.net",
    "corp.example-company.com",
    "post.example.net",
    "inbox.example.org",
    "members.example-shop.com",
    "example-provider.com.tr",
};

static const char *const rows_gender[4] = {
    "female",
    "male",
    "female",
    "unspecified",
};

uint64_t
rows_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// rows_put copies a string and returns the new end.
static char *
rows_put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

// rows_digits writes v as exactly width decimal digits.
static char *
rows_digits(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

// rows_field records the text between start and p as column j and ends it
// with a NUL (protobuf-c reads strings as C strings); returns the new end.
static char *
rows_field(struct rows_row *row, int j, const char *start, char *p)
{
    row->text[j] = start;
    row->len[j] = (size_t) (p - start);
    *p = '\0';
    return p + 1;
}

void
rows_make(struct rows_row *row, uint64_t salt, enum rows_space space,
    uint32_t id, unsigned version)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t          k = rows_mix((((uint64_t) space << 32) | id) ^ salt);
    uint64_t h = rows_mix(k ^ (0x9e3779b97f4a7c15ULL * (version + 1)));
    uint64_t g = rows_mix(h);
    char    *p = row->buf;
    char    *start;

    // contact_key: "contact-" and 16 hex digits.
    start = p;
    p = rows_put(p, "contact-");
    for (int i = 15; i >= 0; i--) {
        *p++ = hex[(k >> (4 * i)) & 15];
    }
    p = rows_field(row, 0, start, p);

    const char *first = rows_first[h & 31];
    const char *second = rows_first[(h >> 48) & 31];
    const char *last = rows_last[(h >> 5) & 31];

    // email: first.second.last1234@domain
    start = p;
    p = rows_put(p, first);
    *p++ = '.';
    p = rows_put(p, second);
    *p++ = '.';
    p = rows_put(p, last);
    p = rows_digits(p, (h >> 10) % 10000, 4);
    *p++ = '@';
    p = rows_put(p, rows_domain[(h >> 24) & 7]);
    p = rows_field(row, 1, start, p);

    // name (two given names) and surname, capitalised.
    start = p;
    p = rows_put(p, first);
    *start = (char) (*start - 'a' + 'A');
    *p++ = ' ';
    char *cap = p;
    p = rows_put(p, second);
    *cap = (char) (*cap - 'a' + 'A');
    p = rows_field(row, 2, start, p);
    start = p;
    p = rows_put(p, last);
    *start = (char) (*start - 'a' + 'A');
    p = rows_field(row, 3, start, p);

    // gsm: 905 and nine digits; differs between versions.
    start = p;
    p = rows_put(p, "905");
    p = rows_digits(p, g % 1000000000u, 9);
    p = rows_field(row, 4, start, p);

    row->text[ROWS_BOOL_COL] = NULL;
    row->len[ROWS_BOOL_COL] = 0;
    row->flag = (int) ((h >> 27) & 1);

    // contact_status: one in eight passive.
    start = p;
    *p++ = ((h >> 28) & 7) == 0 ? 'P' : 'A';
    p = rows_field(row, 6, start, p);

    // birth_date: 1950-2004, days 1-28 so every date is real.
    start = p;
    p = rows_digits(p, 1950 + (g >> 30) % 55, 4);
    *p++ = '-';
    p = rows_digits(p, 1 + (g >> 36) % 12, 2);
    *p++ = '-';
    p = rows_digits(p, 1 + (g >> 40) % 28, 2);
    p = rows_field(row, 7, start, p);

    start = p;
    p = rows_put(p, rows_gender[(g >> 46) & 3]);
    p = rows_field(row, 8, start, p);
}

size_t
rows_payload_bytes(const struct rows_row *row)
{
    size_t n = 0;
    for (int j = 0; j < ROWS_NCOLS; j++) {
        n += j == ROWS_BOOL_COL ? 1 : row->len[j];
    }
    return n;
}

uint32_t *
rows_perm(size_t n, uint64_t seed)
{
    uint32_t *perm = malloc((n > 0 ? n : 1) * sizeof(*perm));
    if (perm == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        perm[i] = (uint32_t) i;
    }
    // Fisher-Yates with a splitmix64 stream.
    uint64_t s = seed;
    for (size_t i = n; i > 1; i--) {
        s += 0x9e3779b97f4a7c15ULL;
        size_t   j = (size_t) (rows_mix(s) % i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    return perm;
}
