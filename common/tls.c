#include <errno.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "flotilla/log.h"
#include "flotilla/tls.h"
#include "flotilla/util.h"

#define PEM_MAX (1u << 20)

bool flt_url_is_tls(const char *url) { return strncmp(url, "tls+tcp", 7) == 0; }

int flt_tls_check(const char *role, const char *url, const flt_tls_opts_t *o,
		  bool dev, flt_error_t *err)
{
	if (flt_url_is_tls(url)) {
		if (!o || !o->ca_file || !o->cert_file || !o->key_file)
			return flt_err(err, FLT_EUSAGE,
				       "%s %s: tls+tcp needs --tls-ca, "
				       "--tls-cert and --tls-key (mutual TLS)",
				       role, url);
		return 0;
	}
	if (!dev)
		flt_warn(
			"plain transport without TLS: peers are not "
			"authenticated and traffic is readable; use tls+tcp:// "
			"in production or --dev to silence this role=%s url=%s",
			role, url);
	return 0;
}

/* Builds a mutual-TLS config; the one place nng_tls_* errors are mapped. */
static int make_config(nng_tls_mode mode, const flt_tls_opts_t *o,
		       const char *server_name, nng_tls_config **out,
		       flt_error_t *err)
{
	nng_tls_config *cfg = NULL;
	cleanup_free char *cert = NULL;
	cleanup_free char *key = NULL;
	int rc;

	if (!o->ca_file)
		return flt_err(err, FLT_EUSAGE, "tls+tcp needs --tls-ca");
	/* Programs always present a certificate (flt_tls_check); only test
	 * tools dial without one, to see that the peer refuses them. */
	if (o->cert_file &&
	    (rc = flt_read_file(o->cert_file, PEM_MAX, &cert)) < 0)
		return flt_err(err, rc, "--tls-cert %s: %s", o->cert_file,
			       strerror(-rc));
	if (o->key_file && (rc = flt_read_file(o->key_file, PEM_MAX, &key)) < 0)
		return flt_err(err, rc, "--tls-key %s: %s", o->key_file,
			       strerror(-rc));
	if ((rc = nng_tls_config_alloc(&cfg, mode)) != 0)
		return flt_err(err, FLT_ETRANSPORT, "tls config: %s",
			       nng_strerror(rc));
	if ((rc = nng_tls_config_ca_file(cfg, o->ca_file)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "--tls-ca %s: %s", o->ca_file,
			nng_strerror(rc));
		goto fail;
	}
	if (cert && key &&
	    (rc = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "--tls-cert %s / --tls-key %s: %s",
			o->cert_file, o->key_file, nng_strerror(rc));
		goto fail;
	}
	/* Both directions verify: agents and operators need a cert. */
	if ((rc = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) !=
	    0) {
		flt_err(err, FLT_ETRANSPORT, "tls auth mode: %s",
			nng_strerror(rc));
		goto fail;
	}
	if (server_name &&
	    (rc = nng_tls_config_server_name(cfg, server_name)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "tls server name: %s",
			nng_strerror(rc));
		goto fail;
	}
	*out = cfg;
	return 0;
fail:
	nng_tls_config_free(cfg);
	return FLT_ETRANSPORT;
}

int flt_tls_listener_setup(nng_listener l, const flt_tls_opts_t *o,
			   flt_error_t *err)
{
	nng_tls_config *cfg;
	int rc = make_config(NNG_TLS_MODE_SERVER, o, NULL, &cfg, err);
	if (rc < 0)
		return rc;
	rc = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg); /* the listener holds its own reference */
	if (rc != 0)
		return flt_err(err, FLT_ETRANSPORT, "listener tls: %s",
			       nng_strerror(rc));
	return 0;
}

int flt_tls_dialer_setup(nng_dialer d, const char *url, const flt_tls_opts_t *o,
			 flt_error_t *err)
{
	char host[256] = "";
	const char *name = o->server_name;
	if (!name) {
		/* tls+tcp://host:port -> host ([v6] brackets dropped). */
		const char *p = strstr(url, "://");
		p = p ? p + 3 : url;
		size_t n = 0;
		if (*p == '[') {
			p++;
			while (p[n] && p[n] != ']' && n + 1 < sizeof(host))
				n++;
		} else {
			while (p[n] && p[n] != ':' && p[n] != '/' &&
			       n + 1 < sizeof(host))
				n++;
		}
		memcpy(host, p, n);
		host[n] = '\0';
		name = host;
	}
	nng_tls_config *cfg;
	int rc = make_config(NNG_TLS_MODE_CLIENT, o, name, &cfg, err);
	if (rc < 0)
		return rc;
	rc = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	if (rc != 0)
		return flt_err(err, FLT_ETRANSPORT, "dialer tls: %s",
			       nng_strerror(rc));
	return 0;
}
