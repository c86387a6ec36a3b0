/*
 * flt-httpd PORT STATEFILE: a tiny HTTP server for health-check tests.
 * Reads STATEFILE before every connection: "503" answers 503, "down"
 * closes the listening socket (connections are refused) until the file
 * says otherwise, anything else answers 200.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void read_state(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\r\n")] = '\0';
}

static int listen_on(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s, 16) < 0) {
		perror("flt-httpd: listen");
		exit(1);
	}
	return s;
}

int main(int argc, char **argv)
{
	char state[64], req[1024];
	if (argc != 3) {
		fprintf(stderr, "usage: flt-httpd PORT STATEFILE\n");
		return 2;
	}
	int port = atoi(argv[1]), ls = -1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("listening on 127.0.0.1:%d\n", port);
	for (;;) {
		read_state(argv[2], state, sizeof(state));
		if (strcmp(state, "down") == 0) {
			if (ls >= 0) {
				close(ls);
				ls = -1;
			}
			usleep(50000);
			continue;
		}
		if (ls < 0)
			ls = listen_on(port);
		struct pollfd p = { .fd = ls, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		if (read(c, req, sizeof(req)) < 0)
			req[0] = '\0';
		read_state(argv[2], state, sizeof(state));
		const char *resp =
			strcmp(state, "503") == 0
				? "HTTP/1.0 503 Service Unavailable\r\n\r\n"
				: "HTTP/1.0 200 OK\r\n\r\nok\n";
		if (write(c, resp, strlen(resp)) < 0)
			perror("flt-httpd: write");
		close(c);
	}
}
