"""How fast can a bare Faust agent go on this machine? (the ceiling a Faust worker works under)

Consumes TOPIC from the start and stops after EV events, printing events/s. MODE:
``none`` (consume and ack), ``table`` (one Table read and write per event), ``both`` (the table
and one produced message per event). STORE picks the table store (``rocksdb://`` or ``memory://``).

    STREAMREC_BROKER=kafka://127.0.0.1:9092 MODE=table TOPIC=events EV=40000 \\
        .venv/bin/python scripts/faust_baseline.py worker -l warn
"""

import os
import time

import faust

MODE = os.environ.get("MODE", "none")
N_EVENTS = int(os.environ.get("EV", "40000"))
RUN = f"baseline-{MODE}-{os.getpid()}"
app = faust.App(RUN, broker=os.environ.get("STREAMREC_BROKER", "kafka://127.0.0.1:9092"),
                store=os.environ.get("STORE", "rocksdb://"), datadir=f"/tmp/{RUN}", key_serializer="raw",
                value_serializer="raw", web_enabled=False, web_port=6199, consumer_auto_offset_reset="earliest",
                topic_partitions=4)
topic = app.topic(os.environ.get("TOPIC", "events"), key_type=bytes, value_type=bytes, partitions=4)
table = app.Table("state", key_type=bytes, value_type=bytes, partitions=4, options={"driver": "rocksdict"})
out_topic = f"{RUN}-out"
seen = 0
started = None


@app.agent(topic)
async def consume(stream):
    global seen, started
    async for ev in stream.events():
        if started is None:
            started = time.perf_counter()
        if MODE in ("table", "both"):
            old = table.get(ev.message.key) or b""
            table[ev.message.key] = old[-200:] + b"x"
        if MODE == "both":
            await app.producer.send(out_topic, ev.message.key, ev.message.value, None, None, None)
        seen += 1
        if seen == N_EVENTS:
            print(f"{MODE}: {seen / (time.perf_counter() - started):.0f} events/s", flush=True)
            os._exit(0)


if __name__ == "__main__":
    app.main()
