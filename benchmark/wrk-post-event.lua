-- wrk script: POST /event with the body event-bench uses for its ceiling, to cross-check
-- event-bench's load generator (README, benchmark section):
--   wrk -t2 -c100 -d15s -s benchmark/wrk-post-event.lua http://127.0.0.1:PORT/event
wrk.method = "POST"
wrk.body = '{"conversation_id":"ceiling","event_name":"llm_call","input":"What is the capital of France?","output":"Paris is the capital of France.","latency":12.5,"error":false}'
wrk.headers["Content-Type"] = "application/json"
