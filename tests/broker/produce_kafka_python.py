"""Produces a JSONL file of interaction events to Kafka with kafka-python, an
independent client: key = customer_id, else interaction_id (agent_id for agent
events); content-type header.

Usage: produce_kafka_python.py BROKERS TOPIC FILE   (prints the number of records sent)
"""
import json
import sys

from kafka import KafkaProducer


def main() -> int:
    brokers, topic, path = sys.argv[1:4]
    producer = KafkaProducer(bootstrap_servers=brokers.split(","), acks="all", linger_ms=5)
    futures = []
    with open(path, "rb") as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            event = json.loads(line)
            if event["type"] == "agent_state":
                key = event["agent_id"]
            else:
                key = event.get("customer_id") or event["interaction_id"]
            futures.append(
                producer.send(
                    topic,
                    key=key.encode(),
                    value=line,
                    headers=[("content-type", b"application/json")],
                )
            )
    for future in futures:
        future.get(timeout=60)
    producer.flush()
    producer.close()
    print(len(futures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
