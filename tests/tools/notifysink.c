/*
 * flt-notify-sink PATH SECONDS: plays systemd's side of sd_notify. Binds a
 * datagram socket at PATH and prints every message it receives, one field
 * per line, for SECONDS; exits 0.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];

	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: flt-notify-sink PATH SECONDS\n");
		return 2;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, argv[1]);
	unlink(argv[1]);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("flt-notify-sink: bind");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	time_t end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		fputs(buf, stdout);
		if (buf[n - 1] != '\n')
			fputc('\n', stdout);
	}
	return 0;
}
