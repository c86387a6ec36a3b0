/*
 * The Java archive probe (see inventory.h): what a jar, war or ear says
 * it is, read with libarchive's zip reader and nothing else.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "flotilla/util.h"

#include "inventory.h"

/* Bounds on what one archive may cost us. */
#define MAX_ENTRIES 200000
#define MAX_POMS 1024
#define POM_MAX (64 * 1024)
/* A manifest is streamed, not kept, and only its main section matters; but
 * OSGi bundles list every package they export and import before their
 * Implementation-* headers, well past 64 KiB. */
#define MANIFEST_READ_MAX (1024 * 1024)
#define NESTED_MAX ((size_t)64 << 20)
#define NESTED_TOTAL ((size_t)256 << 20)
#define BLOCK_SIZE (64 * 1024)

#define FIELD AGENT_INV_FIELD_MAX
/* A manifest line kept whole: longer ones hold nothing we look at. */
#define MF_LINE_MAX 1024

#define JNDI_CLASS "org/apache/logging/log4j/core/lookup/JndiLookup.class"
#define POM_PREFIX "META-INF/maven/"
#define POM_NAME "pom.properties"

struct pom {
	char group[FIELD + 1];
	char artifact[FIELD + 1];
	char version[FIELD + 1];
};

struct manifest {
	char title[FIELD + 1];
	char version[FIELD + 1];
	char vendor_id[FIELD + 1];
	char bsn[FIELD + 1];
	char bundle_version[FIELD + 1];
};

/* The manifest's main section, fed as it is decompressed. */
struct mf_parser {
	struct manifest *mf;
	char line[MF_LINE_MAX + 1];
	size_t len;
	bool cr; /* the last byte ended a line with CR: skip an LF */
	bool done; /* the main section ended (a blank line) */
	char *cur; /* the value the header being read goes to, or NULL */
};

struct probe {
	agent_inv_list_t *l;
	const char *display; /* the path items get */
	const char *file_name; /* its last component, for the fallback */
	unsigned depth; /* 0: a file; 1: an archive inside one */
	size_t *nested_left; /* bytes nested archives may still take */
	struct pom *poms;
	size_t n_poms, cap_poms;
	struct manifest mf;
	size_t entries; /* headers read */
	bool jndi;
	bool too_many_poms;
	bool budget_noted;
};

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}
#define cleanup_archive __attribute__((cleanup(archive_freep)))

static bool has_suffix_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

bool agent_java_archive_name(const char *name)
{
	/* A name that is only the extension (".jar") names no archive. */
	return strlen(name) > 4 &&
	       (has_suffix_ci(name, ".jar") || has_suffix_ci(name, ".war") ||
		has_suffix_ci(name, ".ear"));
}

static const char *last_component(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Copies at most FIELD bytes of s[0..n) into dst, blanks trimmed. */
static void field_copy(char dst[FIELD + 1], const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n > FIELD)
		n = FIELD;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* ---- the manifest ----------------------------------------------------- */

static char *mf_target(struct manifest *mf, const char *name, size_t n)
{
	static const struct {
		const char *name;
		size_t off;
	} keep[] = {
		{ "Implementation-Title", offsetof(struct manifest, title) },
		{ "Implementation-Version",
		  offsetof(struct manifest, version) },
		{ "Implementation-Vendor-Id",
		  offsetof(struct manifest, vendor_id) },
		{ "Bundle-SymbolicName", offsetof(struct manifest, bsn) },
		{ "Bundle-Version", offsetof(struct manifest, bundle_version) },
	};

	for (size_t i = 0; i < FLT_ARRAY_SIZE(keep); i++)
		if (strlen(keep[i].name) == n &&
		    strncasecmp(keep[i].name, name, n) == 0)
			return (char *)mf + keep[i].off;
	return NULL;
}

/*
 * One physical line. Lines are wrapped at 72 bytes, the rest following on
 * lines that start with one space; header names are case-insensitive.
 */
static void mf_line(struct mf_parser *p)
{
	char *line = p->line, *colon;
	size_t len = p->len;

	p->len = 0;
	if (len == 0) {
		p->done = true;
		return;
	}
	line[len] = '\0';
	if (line[0] == ' ') {
		if (p->cur) {
			size_t have = strlen(p->cur);
			size_t add = len - 1;

			if (have + add > FIELD)
				add = FIELD - have;
			memcpy(p->cur + have, line + 1, add);
			p->cur[have + add] = '\0';
		}
		return;
	}
	p->cur = NULL;
	colon = memchr(line, ':', len);
	if (!colon)
		return;
	p->cur = mf_target(p->mf, line, (size_t)(colon - line));
	if (!p->cur)
		return;
	/* Blanks are trimmed at the end: a continuation may start with one. */
	colon++;
	if (*colon == ' ')
		colon++;
	len -= (size_t)(colon - line);
	if (len > FIELD)
		len = FIELD;
	memcpy(p->cur, colon, len);
	p->cur[len] = '\0';
}

static void mf_feed(struct mf_parser *p, const char *buf, size_t n)
{
	for (size_t i = 0; i < n && !p->done; i++) {
		char c = buf[i];

		if (p->cr && c == '\n') {
			p->cr = false;
			continue;
		}
		p->cr = c == '\r';
		if (c == '\r' || c == '\n')
			mf_line(p);
		else if (p->len < MF_LINE_MAX)
			p->line[p->len++] = c;
	}
}

static void mf_trim(char s[FIELD + 1])
{
	char tmp[FIELD + 1];

	field_copy(tmp, s, strlen(s));
	memcpy(s, tmp, strlen(tmp) + 1);
}

static int read_manifest(struct archive *a, struct probe *p)
{
	struct mf_parser mp = { .mf = &p->mf };
	char buf[4096];
	size_t total = 0;
	la_ssize_t n;

	memset(&p->mf, 0, sizeof(p->mf));
	while (!mp.done && total < MANIFEST_READ_MAX) {
		n = archive_read_data(a, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		mf_feed(&mp, buf, (size_t)n);
		total += (size_t)n;
	}
	if (mp.len > 0)
		mf_line(&mp);
	mf_trim(p->mf.title);
	mf_trim(p->mf.version);
	mf_trim(p->mf.vendor_id);
	mf_trim(p->mf.bsn);
	mf_trim(p->mf.bundle_version);
	return 0;
}

/* ---- pom.properties --------------------------------------------------- */

/* Appends code point cp as UTF-8 (lone surrogates as '?'). */
static size_t put_utf8(char *out, size_t o, size_t max, unsigned cp)
{
	char b[3];
	size_t n;

	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = '?';
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	}
	if (o + n > max)
		return o;
	memcpy(out + o, b, n);
	return o + n;
}

static unsigned hex_value(char c)
{
	if (isdigit((unsigned char)c))
		return (unsigned)(c - '0');
	return (unsigned)(tolower((unsigned char)c) - 'a' + 10);
}

/*
 * Reads a key or a value of a properties line from *sp (up to end) into
 * out (at most max bytes), resolving escapes; a key stops at an unescaped
 * '=', ':' or blank.
 */
static void prop_token(const char **sp, const char *end, char *out, size_t max,
		       bool key)
{
	const char *s = *sp;
	size_t o = 0;

	while (s < end) {
		char c = *s;
		unsigned cp;

		if (key && (c == '=' || c == ':' || c == ' ' || c == '\t' ||
			    c == '\f'))
			break;
		s++;
		if (c != '\\' || s == end) {
			if (o < max)
				out[o++] = c;
			continue;
		}
		c = *s++;
		switch (c) {
		case 't': cp = '\t'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 'f': cp = '\f'; break;
		case 'u':
			cp = 0;
			for (int i = 0;
			     i < 4 && s < end && isxdigit((unsigned char)*s);
			     i++, s++)
				cp = cp * 16 + hex_value(*s);
			break;
		default: cp = (unsigned char)c; break;
		}
		if (cp < 0x80) {
			if (o < max)
				out[o++] = (char)cp;
		} else {
			o = put_utf8(out, o, max, cp);
		}
	}
	out[o] = '\0';
	*sp = s;
}

static void pom_line(struct pom *pom, const char *s, const char *end)
{
	char key[32], value[FIELD + 1];

	prop_token(&s, end, key, sizeof(key) - 1, true);
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\f'))
		s++;
	if (s < end && (*s == '=' || *s == ':'))
		s++;
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\f'))
		s++;
	prop_token(&s, end, value, FIELD, false);
	if (strcmp(key, "groupId") == 0)
		field_copy(pom->group, value, strlen(value));
	else if (strcmp(key, "artifactId") == 0)
		field_copy(pom->artifact, value, strlen(value));
	else if (strcmp(key, "version") == 0)
		field_copy(pom->version, value, strlen(value));
}

/*
 * Java properties, as far as pom.properties needs them: "key=value",
 * "key: value" or "key value" lines, '#' and '!' comments, a line ending
 * in an odd number of backslashes continued on the next (whose leading
 * blanks are dropped).
 */
static void pom_parse(struct pom *pom, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	char logical[2 * FIELD + 64];
	size_t ll = 0;
	bool continued = false;

	while (p < end) {
		const char *eol = p, *s;
		size_t n, bs = 0;

		while (eol < end && *eol != '\n' && *eol != '\r')
			eol++;
		s = p;
		p = eol;
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n' && (p == eol || eol[0] == '\r'))
			p++;
		while (s < eol && (*s == ' ' || *s == '\t' || *s == '\f'))
			s++;
		if (!continued) {
			ll = 0;
			if (s == eol || *s == '#' || *s == '!')
				continue;
		}
		n = (size_t)(eol - s);
		while (bs < n && s[n - 1 - bs] == '\\')
			bs++;
		continued = bs % 2 == 1;
		if (continued)
			n--;
		if (n > sizeof(logical) - ll)
			n = sizeof(logical) - ll;
		memcpy(logical + ll, s, n);
		ll += n;
		if (!continued)
			pom_line(pom, logical, logical + ll);
	}
	if (continued)
		pom_line(pom, logical, logical + ll);
}

/* "META-INF/maven/<group>/<artifact>/pom.properties": group and artifact
 * from the path, the defaults of what the file says. */
static bool pom_path(const char *name, struct pom *pom)
{
	const char *g, *a, *f;

	if (strncmp(name, POM_PREFIX, strlen(POM_PREFIX)) != 0)
		return false;
	g = name + strlen(POM_PREFIX);
	a = strchr(g, '/');
	if (!a || a == g)
		return false;
	a++;
	f = strchr(a, '/');
	if (!f || f == a || strcmp(f + 1, POM_NAME) != 0)
		return false;
	field_copy(pom->group, g, (size_t)(a - 1 - g));
	field_copy(pom->artifact, a, (size_t)(f - a));
	pom->version[0] = '\0';
	return true;
}

/* ---- reading entries -------------------------------------------------- */

/*
 * Reads the current entry whole into a new buffer (NUL-terminated, of at
 * most max bytes). -EFBIG when it is larger, -ENOMEM, or the libarchive
 * status of a failed read (its message in the archive).
 */
static int read_entry(struct archive *a, struct archive_entry *e, size_t max,
		      char **out, size_t *outlen)
{
	cleanup_free char *buf = NULL;
	size_t len = 0, cap;
	la_ssize_t n;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0) {
		if ((uint64_t)archive_entry_size(e) > max)
			return -EFBIG;
		cap = (size_t)archive_entry_size(e);
	} else {
		cap = max < BLOCK_SIZE ? max : BLOCK_SIZE;
	}
	if (!(buf = malloc(cap + 1)))
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			char extra;
			char *nb;

			/* Full: the size announced may be a lie. */
			n = archive_read_data(a, &extra, 1);
			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			if (cap == max)
				return -EFBIG;
			/* cap <= max <= NESTED_MAX: no overflow. */
			cap = cap < BLOCK_SIZE ? BLOCK_SIZE : 2 * cap;
			if (cap > max)
				cap = max;
			if (!(nb = realloc(buf, cap + 1)))
				return -ENOMEM;
			buf = nb;
			buf[len++] = extra;
			continue;
		}
		n = archive_read_data(a, buf + len, cap - len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = steal_ptr(&buf);
	*outlen = len;
	return 0;
}

static const char *entry_error(struct archive *a, int rc)
{
	if (rc == -EFBIG)
		return "too large";
	if (rc == -ENOMEM)
		return "out of memory";
	return archive_error_string(a) ? archive_error_string(a)
				       : "cannot be read";
}

static int probe_memory(const char *buf, size_t len, const char *display,
			const char *file_name, size_t *nested_left,
			agent_inv_list_t *l, flt_error_t *err);

static void probe_nested(struct probe *p, struct archive *a,
			 struct archive_entry *e, const char *name)
{
	cleanup_free char *buf = NULL, *display = NULL;
	size_t len = 0, max = NESTED_MAX;
	int rc;

	if (*p->nested_left < max)
		max = *p->nested_left;
	if (max == 0) {
		if (!p->budget_noted)
			agent_inv_error(p->l,
					"java %s: nested archives past %zu MiB "
					"not probed",
					p->display, NESTED_TOTAL >> 20);
		p->budget_noted = true;
		return;
	}
	if (asprintf(&display, "%s!/%s", p->display, name) < 0) {
		display = NULL;
		agent_inv_error(p->l, "java %s!/%s: out of memory", p->display,
				name);
		return;
	}
	rc = read_entry(a, e, max, &buf, &len);
	if (rc < 0) {
		agent_inv_error(p->l, "java %s: %s%s", display,
				entry_error(a, rc),
				rc == -EFBIG ? " to probe" : "");
		return;
	}
	*p->nested_left -= len;
	probe_memory(buf, len, display, last_component(name), p->nested_left,
		     p->l, NULL);
}

static void probe_pom(struct probe *p, struct archive *a,
		      struct archive_entry *e, const struct pom *from_path)
{
	cleanup_free char *buf = NULL;
	struct pom *pom;
	size_t len;
	int rc;

	if (p->n_poms == MAX_POMS) {
		if (!p->too_many_poms)
			agent_inv_error(p->l,
					"java %s: more than %d pom.properties; "
					"the rest not listed",
					p->display, MAX_POMS);
		p->too_many_poms = true;
		return;
	}
	rc = read_entry(a, e, POM_MAX, &buf, &len);
	if (rc < 0) {
		agent_inv_error(p->l, "java %s: %s/%s/" POM_NAME ": %s",
				p->display, from_path->group,
				from_path->artifact, entry_error(a, rc));
		return;
	}
	if (p->n_poms == p->cap_poms) {
		size_t cap = p->cap_poms ? 2 * p->cap_poms : 4;
		struct pom *np = reallocarray(p->poms, cap, sizeof(*np));

		if (!np) {
			agent_inv_error(p->l, "java %s: out of memory",
					p->display);
			return;
		}
		p->poms = np;
		p->cap_poms = cap;
	}
	pom = &p->poms[p->n_poms++];
	*pom = *from_path;
	pom_parse(pom, buf, len);
}

/* ---- the items -------------------------------------------------------- */

/* "log4j-core-2.14.1.jar": log4j-core, 2.14.1 (the version starts at the
 * first "-<digit>"); "app.jar": app, "". */
static void name_from_file(const char *file, char name[FIELD + 1],
			   char version[FIELD + 1])
{
	size_t n = strlen(file), i;

	if (agent_java_archive_name(file))
		n -= 4;
	for (i = 1; i + 1 < n; i++)
		if (file[i] == '-' && isdigit((unsigned char)file[i + 1]))
			break;
	if (i + 1 >= n) {
		field_copy(name, file, n);
		version[0] = '\0';
		return;
	}
	field_copy(name, file, i);
	field_copy(version, file + i + 1, n - i - 1);
}

static void add_item(struct probe *p, const char *name, const char *version,
		     const char *group, const char *source)
{
	Flotilla__InventoryItem it = FLOTILLA__INVENTORY_ITEM__INIT;

	it.kind = FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA;
	it.name = (char *)name;
	it.version = (char *)version;
	it.group = (char *)group;
	it.path = (char *)p->display;
	it.source = (char *)source;
	it.jndi_lookup = p->jndi;
	agent_inv_add(p->l, &it);
}

/*
 * One item per pom.properties; without any, the manifest's title (or the
 * last part of its Bundle-SymbolicName) and version, what it lacks taken
 * from the file name; without those either, the file name alone.
 */
static void emit(struct probe *p)
{
	char fname[FIELD + 1], fversion[FIELD + 1], bsn[FIELD + 1];
	const struct manifest *mf = &p->mf;
	const char *name, *version;
	char *semi, *dot;

	for (size_t i = 0; i < p->n_poms; i++)
		add_item(p, p->poms[i].artifact, p->poms[i].version,
			 p->poms[i].group, "pom.properties");
	if (p->n_poms > 0)
		return;

	name_from_file(p->file_name, fname, fversion);
	memcpy(bsn, mf->bsn, sizeof(bsn));
	if ((semi = strchr(bsn, ';')))
		*semi = '\0';
	mf_trim(bsn);
	dot = strrchr(bsn, '.');
	name = mf->title[0] ? mf->title : dot && dot[1] ? dot + 1 : bsn;
	version = mf->version[0] ? mf->version : mf->bundle_version;
	if (!name[0] && !version[0]) {
		add_item(p, fname, fversion, "", "filename");
		return;
	}
	add_item(p, name[0] ? name : fname, version[0] ? version : fversion,
		 mf->vendor_id, "manifest");
}

/* ---- one archive ------------------------------------------------------ */

static bool is_jndi_class(const char *name)
{
	size_t n = strlen(name), k = strlen(JNDI_CLASS);

	/* Also under WEB-INF/classes, BOOT-INF/classes or a shaded prefix. */
	return n >= k && strcmp(name + n - k, JNDI_CLASS) == 0 &&
	       (n == k || name[n - k - 1] == '/');
}

/* Reads every entry of an opened archive into p; 0 or FLT_EPROTO (err). */
static int probe_entries(struct probe *p, struct archive *a, flt_error_t *err)
{
	struct archive_entry *e;
	bool failed = false;
	int r;

	for (;;) {
		const char *name;
		struct pom pom;

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_FATAL)
			return flt_err(err, FLT_EPROTO, "java %s: %s",
				       p->display, entry_error(a, r));
		if (++p->entries > MAX_ENTRIES)
			return flt_err(err, FLT_EPROTO,
				       "java %s: more than %d entries; the "
				       "rest not read",
				       p->display, MAX_ENTRIES);
		if (r < ARCHIVE_WARN) {
			if (!failed)
				agent_inv_error(p->l, "java %s: %s", p->display,
						entry_error(a, r));
			failed = true;
			continue;
		}
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		name = archive_entry_pathname(e);
		if (!name)
			name = archive_entry_pathname_utf8(e);
		if (!name)
			continue;

		if (is_jndi_class(name)) {
			p->jndi = true;
		} else if (strcasecmp(name, "META-INF/MANIFEST.MF") == 0) {
			r = read_manifest(a, p);
			if (r < 0)
				agent_inv_error(p->l, "java %s: %s: %s",
						p->display, name,
						entry_error(a, r));
		} else if (pom_path(name, &pom)) {
			probe_pom(p, a, e, &pom);
		} else if (p->depth == 0 && agent_java_archive_name(name)) {
			probe_nested(p, a, e, name);
		}
	}
	return 0;
}

static int probe_archive(struct archive *a, int open_rc, struct probe *p,
			 flt_error_t *err)
{
	flt_error_t e2;
	int rc;

	if (!err)
		err = &e2;
	if (open_rc != ARCHIVE_OK && open_rc != ARCHIVE_WARN) {
		rc = flt_err(err, FLT_EPROTO, "java %s: %s", p->display,
			     entry_error(a, open_rc));
		agent_inv_error(p->l, "%s", err->msg);
		return rc;
	}
	rc = probe_entries(p, a, err);
	if (rc < 0)
		agent_inv_error(p->l, "%s", err->msg);
	/* What was read before a failure is still evidence; an archive not
	 * one entry of which could be read is no archive. */
	if (rc == 0 || p->entries > 0)
		emit(p);
	free(p->poms);
	return rc;
}

static struct archive *reader_new(void)
{
	struct archive *a = archive_read_new();

	/* Both zip readers: the seekable one (central directory first) wins
	 * on files and memory, the streaming one still reads the local
	 * headers of an archive whose end is missing. */
	if (a && archive_read_support_format_zip(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int probe_memory(const char *buf, size_t len, const char *display,
			const char *file_name, size_t *nested_left,
			agent_inv_list_t *l, flt_error_t *err)
{
	cleanup_archive struct archive *a = reader_new();
	struct probe p = {
		.l = l,
		.display = display,
		.file_name = file_name,
		.depth = 1,
		.nested_left = nested_left,
	};

	if (!a) {
		agent_inv_error(l, "java %s: out of memory", display);
		return flt_err(err, -ENOMEM, "java %s: out of memory", display);
	}
	return probe_archive(a, archive_read_open_memory(a, buf, len), &p, err);
}

int agent_java_probe_fd(int fd, const char *display_path, agent_inv_list_t *l,
			flt_error_t *err)
{
	cleanup_archive struct archive *a = NULL;
	size_t nested_left = NESTED_TOTAL;
	struct probe p = {
		.l = l,
		.display = display_path,
		.file_name = last_component(display_path),
		.nested_left = &nested_left,
	};

	if (fd < 0 || !display_path || !l)
		return flt_err(err, -EINVAL, "java probe: missing argument");
	if (!(a = reader_new())) {
		agent_inv_error(l, "java %s: out of memory", display_path);
		return flt_err(err, -ENOMEM, "java %s: out of memory",
			       display_path);
	}
	/* archive_read_open_fd seeks on a regular file, which the seekable
	 * zip reader needs; it reads from the current offset. */
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int rc = -errno;

		agent_inv_error(l, "java %s: %s", display_path, strerror(-rc));
		return flt_err(err, rc, "java %s: %s", display_path,
			       strerror(-rc));
	}
	return probe_archive(a, archive_read_open_fd(a, fd, BLOCK_SIZE), &p,
			     err);
}

int agent_java_probe(const char *path, const char *display_path,
		     agent_inv_list_t *l, flt_error_t *err)
{
	cleanup_close int fd = -1;
	struct stat st;
	int rc;

	if (!path || !l)
		return flt_err(err, -EINVAL, "java probe: missing argument");
	if (!display_path)
		display_path = path;
	/* No FIFO may hang the open, no device be read as an archive. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		agent_inv_error(l, "java %s: %s", display_path, strerror(-rc));
		return flt_err(err, rc, "java %s: %s", display_path,
			       strerror(-rc));
	}
	if (!S_ISREG(st.st_mode)) {
		agent_inv_error(l, "java %s: not a regular file", display_path);
		return flt_err(err, -EINVAL, "java %s: not a regular file",
			       display_path);
	}
	return agent_java_probe_fd(fd, display_path, l, err);
}
