#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "flotilla/notify.h"

void flt_notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status ? status : "ready");
}

void flt_notify_stopping(void) { sd_notify(0, "STOPPING=1"); }

int64_t flt_notify_watchdog_interval_ms(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	return (int64_t)(usec / 2000);
}

void flt_notify_watchdog(void) { sd_notify(0, "WATCHDOG=1"); }
