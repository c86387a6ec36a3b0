/* Transport security options shared by every program. */
#ifndef FLOTILLA_TLS_H
#define FLOTILLA_TLS_H

#include <stdbool.h>

#include <nng/nng.h>

#include "flotilla/error.h"

typedef struct flt_tls_opts {
	const char *ca_file; /* PEM CA chain that signs the peer */
	const char *cert_file; /* PEM certificate of this side */
	const char *key_file; /* PEM private key of this side */
	const char *server_name; /* dialer: name to verify; default: URL host */
} flt_tls_opts_t;

/* True for tls+tcp:// (and tls+tcp4/6) URLs. */
bool flt_url_is_tls(const char *url);

/*
 * Configures mutual TLS on a tls+tcp listener or dialer: both sides must
 * present a certificate signed by ca_file. Refuses incomplete options.
 */
int flt_tls_listener_setup(nng_listener l, const flt_tls_opts_t *o,
			   flt_error_t *err);
int flt_tls_dialer_setup(nng_dialer d, const char *url, const flt_tls_opts_t *o,
			 flt_error_t *err);

/*
 * Checks that a tls+tcp URL has all three files, and logs the
 * plain-transport warning for any other URL unless dev is true. role is
 * "--listen", "--api" or "--coordinator", for messages.
 */
int flt_tls_check(const char *role, const char *url, const flt_tls_opts_t *o,
		  bool dev, flt_error_t *err);

#endif
