/* net.h -- a free TCP port on 127.0.0.1 for a test's server (an endpoint
 * bound by a child process, whose port the test must know in advance).
 * Header-only: each suite is one executable. */
#ifndef KL_TEST_NET_H
#define KL_TEST_NET_H
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port nothing listens on right now (another process could take it
 * before the caller binds it; on a test machine's loopback it does not). */
static inline int kl_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}
#endif
