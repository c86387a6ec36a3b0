/* systemd service notifications (no-ops when not run by systemd). */
#ifndef FLOTILLA_NOTIFY_H
#define FLOTILLA_NOTIFY_H

#include <stdint.h>

void flt_notify_ready(const char *status);
void flt_notify_stopping(void);
/* How often to send WATCHDOG=1 (half of WATCHDOG_USEC), 0 when disabled. */
int64_t flt_notify_watchdog_interval_ms(void);
void flt_notify_watchdog(void);

#endif
