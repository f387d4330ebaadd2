/** The dashboard's event stream (dashboard/events.ts): every page gets the stats, none piles up. */
import assert from "node:assert/strict";
import { MAX_UNSENT_MESSAGES, StatsHub } from "../../src/dashboard/events.ts";
import { waitFor } from "../helpers/wait_for.ts";

const decoder = new TextDecoder();

Deno.test("stats events: a page that stops reading is dropped after a bounded backlog; the others go on", async () => {
  let reads = 0;
  // About 10 KB a message, as a busy queue's stats can be.
  const hub = new StatsHub(
    () => Promise.resolve({ n: ++reads, pad: "x".repeat(10_000) }),
    1,
    () => {},
  );
  try {
    const stalled = hub.subscribe(); // never read until the end
    const live = hub.subscribe();
    let seen = 0;
    // The reading page reads as messages come.
    const reading = (async () => {
      for await (const chunk of live) {
        seen += decoder.decode(chunk).split("event: stats").length - 1;
      }
    })();
    // It keeps getting them well past the stalled page's bound.
    await waitFor(() => reads > 4 * MAX_UNSENT_MESSAGES && seen > 2 * MAX_UNSENT_MESSAGES, {
      what: "messages to the reading page",
    });
    assert.equal(hub.size, 1, "the stalled page was dropped, the reading one kept");
    // What the stalled page can still read: its backlog, bounded, then the end of the stream.
    let messages = 0;
    for await (const chunk of stalled) {
      messages += decoder.decode(chunk).split("event: stats").length - 1;
    }
    assert.ok(messages >= 1 && messages <= MAX_UNSENT_MESSAGES + 1, `${messages} messages kept`);
    hub.close();
    await reading;
    assert.equal(hub.size, 0);
  } finally {
    hub.close();
  }
});
