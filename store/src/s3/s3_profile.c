/* s3_profile.c -- reads one profile's settings from an AWS shared file,
 * with libinih, and says where those files are (see s3_profile.h).
 *
 * libinih as Debian 12 builds it (libinih 55-1) takes its options at run
 * time from process-wide globals, left at upstream's defaults: every line
 * goes through a 200-byte stack buffer (ini_max_line 200, ini_use_stack
 * on, no realloc), for ini_parse_file, ini_parse_string and
 * ini_parse_stream alike.  A longer line is cut at 199 bytes and its rest
 * parsed as a line of its own (a 1500-byte session token would come out
 * cut short, and the tail of a long comment could read as a key).
 * Section names are cut at 49 bytes, an indented line calls the handler
 * again with the previous key (configparser's continuation lines), and a
 * ';' after whitespace starts a comment.  The globals belong to the whole
 * process (config.c and the bridge parse INI too) and setting them is not
 * thread-safe, so they are left alone.  Instead the reader that feeds
 * ini_parse_stream reads each line whole and hands inih only what fits
 * its buffer, keeping the rest itself:
 *   - a name=value line too long for the buffer goes to inih as "name=",
 *     its value (found by inih's own rules: after the first '=' or ':', up
 *     to a ';' after whitespace, trimmed) kept in the reader, where the
 *     handler, which inih calls before it reads on, takes it from;
 *   - section headers are followed by the reader, whole, so long profile
 *     names match exactly; inih's cut `section` is not used;
 *   - indented lines continue a nested setting ("s3 =\n  x = y"), which
 *     never holds credentials: the handler ignores them.
 * So the files read as before (botocore's configparser reads them the
 * same way), except that ';' after whitespace ends a value, which no AWS
 * key or token contains.
 */
#define _GNU_SOURCE
#include "s3/s3_profile.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* The settings read, by name: where each goes in kl_s3_profile_keys. */
static const struct {
    const char *name;
    size_t off;
} settings[] = {
#define S(field)                                                                                   \
    {                                                                                              \
#field, offsetof(kl_s3_profile_keys, field)                                                \
    }
    {"aws_access_key_id", offsetof(kl_s3_profile_keys, key_id)},
    {"aws_secret_access_key", offsetof(kl_s3_profile_keys, secret)},
    {"aws_session_token", offsetof(kl_s3_profile_keys, token)},
    S(role_arn),
    S(source_profile),
    S(credential_source),
    S(role_session_name),
    S(external_id),
    S(duration_seconds),
    S(mfa_serial),
    S(web_identity_token_file),
    S(credential_process),
    S(region),
    S(sts_regional_endpoints),
    S(endpoint_url),
    S(ignore_configured_endpoint_urls),
#undef S
};
#define N_SETTINGS (sizeof settings / sizeof *settings)

static char **field(kl_s3_profile_keys *k, size_t i)
{
    return (char **)((char *)k + settings[i].off);
}

void Kl_s3_profile_keys_free(kl_s3_profile_keys *k)
{
    for (size_t i = 0; i < N_SETTINGS; i++) wipe_free(*field(k, i));
    memset(k, 0, sizeof *k);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* inih's scan for the end of a name or a value (find_chars_or_comment,
 * inline comments on): the first of `chars`, or a ';' after whitespace. */
static char *ini_scan(char *s, const char *chars)
{
    int was_space = 0;
    while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Does the section header `hdr` (without brackets, trimmed) name profile?
 * In the config file profiles are "[profile NAME]" except "[default]". */
static int section_matches(const char *hdr, const char *profile, int is_config)
{
    if (!is_config) return strcmp(hdr, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(hdr, "default") == 0) return 1;
    if (strncmp(hdr, "profile", 7) != 0 || !isspace((unsigned char)hdr[7])) return 0;
    const char *name = hdr + 7;
    while (isspace((unsigned char)*name)) name++;
    return strcmp(name, profile) == 0;
}

typedef struct pf_reader {
    FILE *f;
    const char *profile;
    int is_config;
    kl_s3_profile_keys *k;
    char *line; /* the current line, whole (getline) */
    size_t cap;
    int lineno;
    int indented;     /* the current line starts with blanks */
    char *long_value; /* the value of a line cut for inih, or NULL */
    int in;           /* the current section is the profile */
    int found;        /* the profile's section was seen */
    int oom;
} pf_reader;

/* Takes the value of a name=value line too long for inih out of line
 * and leaves "name=" in s (in place) for inih.  -1 when the line has no
 * name inih would read, or one too long for inih's buffer too. */
static int cut_value(pf_reader *L, char *s, int num)
{
    char *sep = ini_scan(s, "=:");
    if ((*sep != '=' && *sep != ':') || (size_t)(sep - s) + 3 > (size_t)num) return -1;
    char *v = sep + 1;
    *ini_scan(v, NULL) = '\0';
    if (!(L->long_value = strdup(trim(v)))) {
        L->oom = 1;
        return -1;
    }
    sep[0] = '=';
    sep[1] = '\0';
    return 0;
}

/* The ini_reader: one whole line from the file per call, in inih's
 * terms (see the top of the file). */
static char *reader(char *str, int num, void *stream)
{
    pf_reader *L = stream;
    if (L->long_value) {
        OPENSSL_cleanse(L->long_value, strlen(L->long_value));
        free(L->long_value);
        L->long_value = NULL;
    }
    if (L->oom) return NULL;
    errno = 0;
    if (getline(&L->line, &L->cap, L->f) < 0) {
        if (errno == ENOMEM) L->oom = 1;
        return NULL;
    }
    char *s = L->line;
    if (++L->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* a UTF-8 BOM (inih would skip it too) */
    L->indented = *s == ' ' || *s == '\t';
    if (strlen(s) < (size_t)num) {
        memcpy(str, s, strlen(s) + 1);
        s = trim(s);
    } else {
        s = trim(s);
        int cut = *s == '[' || *s == ';' || *s == '#' || cut_value(L, s, num) != 0;
        snprintf(str, num, "%s\n", cut ? ";" : s);
    }
    if (*s == '[') {
        char *end = strrchr(s, ']');
        if (end) {
            *end = '\0';
            L->in = section_matches(trim(s + 1), L->profile, L->is_config);
            L->found |= L->in;
        }
    }
    return str;
}

static int set_dup(char **dst, const char *v)
{
    wipe_free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : -1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    pf_reader *L = user;
    (void)section; /* cut at 49 bytes: L->in says where we are */
    if (!L->in || L->indented || L->oom) return 1;
    if (L->long_value) value = L->long_value;
    kl_s3_profile_keys *k = L->k;
    int bad = 0;
    size_t i = 0;
    while (i < N_SETTINGS && strcmp(name, settings[i].name) != 0) i++;
    if (i < N_SETTINGS)
        bad = set_dup(field(k, i), value);
    else if (strcmp(name, "aws_security_token") == 0 && !k->token)
        bad = set_dup(&k->token, value);
    else if (!k->unsupported[0] &&
             (strcmp(name, "sso_session") == 0 || strcmp(name, "sso_start_url") == 0))
        snprintf(k->unsupported, sizeof k->unsupported, "%s", name);
    if (bad) {
        L->oom = 1;
        return 0;
    }
    return 1;
}

static char *home_path(const char *rel)
{
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if ((!home || !*home) && getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
        home = res->pw_dir;
    char *out = NULL;
    if (asprintf(&out, "%s/%s", home ? home : "", rel) < 0) return NULL;
    return out;
}

/* A path from the environment with "~/" expanded, else the default. */
static char *aws_file(const char *var, const char *deflt)
{
    const char *v = getenv(var);
    if (!v || !*v) return home_path(deflt);
    if (v[0] == '~' && v[1] == '/') return home_path(v + 2);
    return strdup(v);
}

int Kl_s3_profile_files(char **cred, char **conf)
{
    *cred = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    *conf = aws_file("AWS_CONFIG_FILE", ".aws/config");
    if (*cred && *conf) return 0;
    free(*cred);
    free(*conf);
    *cred = *conf = NULL;
    return -1;
}

int Kl_s3_profile_read(const char *path, const char *profile, int is_config, kl_s3_profile_keys *k)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    pf_reader L = {.f = f, .profile = profile, .is_config = is_config, .k = k};
    /* inih's own verdict (the first line it could not read) does not
     * matter: lines that are not name=value never held credentials. */
    ini_parse_stream(reader, &L, handler, &L);
    fclose(f);
    if (L.line) {
        OPENSSL_cleanse(L.line, L.cap);
        free(L.line);
    }
    if (L.long_value) {
        OPENSSL_cleanse(L.long_value, strlen(L.long_value));
        free(L.long_value);
    }
    return L.oom ? -1 : L.found;
}
