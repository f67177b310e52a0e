"""Strimzi KafkaTopic resources for every topic the shop uses, from shopkit.kafka_admin's table
(names, partitions, retention), replicated: what a multi-broker cluster needs instead of the
chart's topics Job, whose topics have one replica. docs/deployment.md, "Kafka with Strimzi":

    uv run python deploy/helm/strimzi_topics.py --cluster shop-kafka [--prefix prod.] > topics.yaml
    kubectl apply -n kafka -f topics.yaml
    helm install ... --set kafka.createTopics=false
"""

import argparse
import re
import sys
from typing import Any

import yaml

from shopkit.kafka_admin import topic_configs


def kafka_topics(
    cluster: str, *, prefix: str = "", replicas: int = 3, min_insync: int = 2
) -> list[dict[str, Any]]:
    """One KafkaTopic per topic; acks=all producers then wait for `min_insync` brokers."""
    resources = []
    for name, (partitions, config) in sorted(topic_configs(prefix).items()):
        resources.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                # a Kubernetes name is lower case; Kafka's own name is spec.topicName
                "metadata": {
                    "name": re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip(".-"),
                    "labels": {"strimzi.io/cluster": cluster},
                },
                "spec": {
                    "topicName": name,
                    "partitions": partitions,
                    "replicas": replicas,
                    "config": {**config, "min.insync.replicas": str(min_insync)},
                },
            }
        )
    return resources


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", required=True, help="the Strimzi Kafka resource's name")
    parser.add_argument("--prefix", default="", help="kafka.namespace of the release")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--min-insync", type=int, default=2)
    args = parser.parse_args(argv)
    if not 1 <= args.min_insync <= args.replicas:
        parser.error("--min-insync must be between 1 and --replicas")
    topics = kafka_topics(
        args.cluster, prefix=args.prefix, replicas=args.replicas, min_insync=args.min_insync
    )
    yaml.safe_dump_all(topics, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
