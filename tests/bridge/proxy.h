/* proxy.h -- a loopback TCP proxy a test can cut: stands between a
 * client (the bridge, a store writer) and the S3 server (Ceph RGW) to
 * simulate an S3 outage without stopping RGW (whose data lives in memory
 * and would be lost).  While cut, open connections are closed and new ones
 * are closed on accept, which S3 clients see as connection failures. */
#ifndef BR_PROXY_H
#define BR_PROXY_H

typedef struct ht_proxy ht_proxy;

/* Listens on 127.0.0.1 (a free port) and forwards to host:port. */
ht_proxy *ht_proxy_start(const char *host, int port);
int ht_proxy_port(const ht_proxy *p);
void ht_proxy_cut(ht_proxy *p, int cut);
/* While deaf (needle not NULL), requests whose bytes hold `needle` ("" is
 * every request) still reach the server and take effect, but their
 * connection is closed as soon as the server answers: the client never
 * hears back, as when a network fails between request and answer.  The
 * needle must outlive the proxy (a string literal). */
void ht_proxy_deaf(ht_proxy *p, const char *needle);
/* Holds every answer back by `ms` (per read of the server's bytes: small
 * answers once), as a distant server would. */
void ht_proxy_delay(ht_proxy *p, int ms);
void ht_proxy_stop(ht_proxy *p);

#endif
