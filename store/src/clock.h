/* clock.h -- the library's one monotonic clock at nanosecond resolution,
 * for timing requests (objstore.c's counters); kl_mono_ms (klstore.h) is
 * the same clock in milliseconds, for ages and timeouts.  Both in util.c. */
#ifndef KL_CLOCK_H
#define KL_CLOCK_H
#include <stdint.h>

uint64_t Kl_mono_ns(void);
/* The same, but counting time the machine spent suspended: for the claim
 * hold (tail.h), where a clock that stops could let a writer think its
 * view is younger than it is. */
uint64_t Kl_boot_ns(void);
#endif
