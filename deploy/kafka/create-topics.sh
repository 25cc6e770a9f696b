#!/bin/bash
# Creates the topics in topics.txt (beside this file) that do not exist yet, with the settings of
# deploy/k8s/topics.yaml scaled to the broker's size: run once by compose's kafka-topics service
# before the services start, so no topic is left to a service's first use (which creates it with
# the broker's defaults). Existing topics are left as they are.
#
# Environment: BOOTSTRAP_SERVERS, TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR and
# TOPIC_MIN_INSYNC_REPLICAS; TOPICS_FILE and KAFKA_TOPICS where they are not at the paths below.
set -euo pipefail

topics_file="${TOPICS_FILE:-/opt/crm/topics.txt}"
kafka_topics="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

while read -r name retention_ms; do
    case "$name" in ""|\#*) continue ;; esac
    "$kafka_topics" --bootstrap-server "$BOOTSTRAP_SERVERS" --create --if-not-exists \
        --topic "$name" \
        --partitions "$TOPIC_PARTITIONS" \
        --replication-factor "$TOPIC_REPLICATION_FACTOR" \
        --config cleanup.policy=delete \
        --config retention.ms="$retention_ms" \
        --config min.insync.replicas="$TOPIC_MIN_INSYNC_REPLICAS"
done < "$topics_file"
echo "topics ready"
