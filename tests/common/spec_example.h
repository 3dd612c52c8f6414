/* spec_example.h -- the INI example of the spec's "Kafka Bridge" section,
 * verbatim except for what the arguments fill in: a printf format of
 * (endpoint, bucket, access_key, secret_key, security_token, session_token,
 * more [s3] lines, bootstrap.servers, text after the [parser] section).
 * The config parser's test fills in the published values; the bridge's
 * end-to-end test runs it against the test's broker and store. */
#ifndef KL_TEST_SPEC_EXAMPLE_H
#define KL_TEST_SPEC_EXAMPLE_H

static const char KL_SPEC_EXAMPLE[] = "[s3]\n"
                                      "endpoint=\"%s\"\n"
                                      "bucket_name=\"%s\"\n"
                                      "region=\"us-east-1\"\n"
                                      "path_style=true\n"
                                      "use_default_credentials=false\n"
                                      "access_key=\"%s\"\n"
                                      "secret_key=\"%s\"\n"
                                      "security_token=\"%s\"\n"
                                      "session_token=\"%s\"\n"
                                      "profile=\"test\"\n"
                                      "compact_size_threshold=1000000\n"
                                      "compact_records_threshold=100\n"
                                      "compact_objects_threshold=10\n"
                                      "%s"
                                      "\n"
                                      "[batcher]\n"
                                      "writer_thread_count=1\n"
                                      "writer_thread_queue_capacity=4096\n"
                                      "batch_check_interval_millis=100\n"
                                      "batch_flush_interval_millis=1000\n"
                                      "batch_flush_record_count_threshold=100000\n"
                                      "batch_flush_size_threshold=1000000\n"
                                      "\n"
                                      "[kafka]\n"
                                      "topic=\"inbound\"\n"
                                      "offset_commit_interval_seconds=60\n"
                                      "group.id=\"test_group\"\n"
                                      "bootstrap.servers=\"%s\"\n"
                                      "auto.offset.reset=earliest\n"
                                      "\n"
                                      "[parser]\n"
                                      "nonce_parser=\"RecordOffset\"\n"
                                      "timestamp_parser=\"None\"\n"
                                      "keyspace_parser=\"Static(my_keyspace)\"\n"
                                      "key_parser=\"RecordPartition\"\n"
                                      "%s";

#endif
