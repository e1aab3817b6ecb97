"""A faithful fake upstream video-generation server, for tests and sandboxes.

It serves every upstream dialect the gateway's adapters speak, over real HTTP, from one app:

- the OpenAI Videos API (`POST/GET /v1/videos`, `GET/DELETE /v1/videos/{id}`, `.../content`,
  `.../remix`), as the `openai` SDK calls it and vLLM-Omni serves it;
- the relay "unified video format" (`POST /v1/video/create`, `GET /v1/video/query?id=`), whose results
  are signed, expiring links to `/_fake/files/...` (on `cdn_base_url` when given);
- Google's Gemini API for Veo (`/v1beta/models/{model}:predictLongRunning`, operations, keyed file
  downloads that redirect to storage): `veo_routes`, whose docstring names its sources;
- ByteDance's Ark / ModelArk for Seedance (`/api/v3/contents/generations/tasks`: create, get, list,
  delete): `seedance_routes`;
- Alibaba's DashScope for Wan (`/api/v1/services/aigc/.../video-synthesis`, `/api/v1/tasks/...`: query,
  list, cancel; failures inside HTTP 200 answers): `dashscope_routes`;
- Kling AI's official API (`/v1/videos/text2video`, `/v1/videos/image2video`, queries by task id or
  `external_task_id`; HS256 Bearer tokens checked, with the fake's `api_key` as the secret key; refusals
  as codes, some inside HTTP 200 answers): `kling_routes`;
- MiniMax's Hailuo API (`/v1/video_generation`, `/v1/query/video_generation`, `/v1/files/retrieve`;
  errors in `base_resp` inside HTTP 200 answers): `minimax_routes`;
- fal's queue API, under `/fal` (submit, status, result, cancel; `Authorization: Key`; a model's refusal of
  its input kept in the result, as fal keeps it; the models' inputs in `fal_input`): `fal_routes`;
- Replicate's predictions API (`/v1/models/{owner}/{name}/predictions`, `/v1/predictions`: create, get,
  list, cancel; `Prefer: wait`; inputs validated at create, `replicate_input`): `replicate_routes`;
- OpenRouter's video API (`/api/v1/videos`: create, poll, content, models; `/api/v1/key`):
  `openrouter_routes`.

`GET /_fake/journal` lists what it saw (also `FakeUpstream.journal`); `POST /_fake/reset` forgets it all.
Idempotency-Key is honoured on creates: a replay gets the same job and is journalled `duplicate_create`.

Behaviour directives, as prompt tokens (`"a red fox #ready=0.5 #429=2"`) or an `X-Fake: name=value; name2`
header (the prompt wins a name both set). "First N" counts are per exact prompt string, and a fault
counts only the times it fired, so faults of one kind chain in the order listed.

- timing: `ready=S`, `queue=S`, `latency=S` (every response about the prompt), `create_latency=S` (a
  create waits this long before its job exists and it answers: slower than a client's timeout, the job
  appears after the client gave up), `poll_after_ms=N`,
  `retry_after=S` (for 429/503; default 1).
- create faults: `429=N`, `5xx=N` (503), `http200_error=N` (unified: HTTP 200 with an error body),
  `accept_then_drop=N` (job made, connection cut mid-body), `accept_then_hang=N` (job made, answer held
  hang_seconds; longer than the gateway's request timeout, it is a create slower than that timeout),
  `accept_then_5xx=N` (job made, then a proxy's 502 HTML page, as Cloudflare or nginx answer when the
  origin's answer is lost), `moderation` (400 moderation_blocked; `moderation=job`: the job fails so later),
  `no_idempotency` (every create is a new job), `echo_key` (400 echoing the caller's bearer token in the
  error's code, type and message, as upstreams and proxies do; `echo_key=job`: the job is made and
  fails later with the token in its error).
- poll faults: `poll5xx=N` (500), `poll_hang=N`, `malformed=N` (200 with truncated JSON).
- outcomes: `fail=CODE` (+ `fail_jobs=N`: only the first N jobs of the prompt), `watermark_fail=N`
  (unified: `watermark: false` fails with watermark_removal_failed, `true` completes watermarked),
  `expired_link=N` (first N downloads: 403 from the CDN link / 404 video_expired from /content).
- LiteLLM's proxy (OpenAI dialect): `thumbnail_is_video` (`GET .../content?variant=thumbnail` answers
  with the whole MP4, labelled video/mp4: LiteLLM's content route takes no variant, see
  litellm/proxy/video_endpoints/endpoints.py; `thumbnail_is_video=octet`: labelled
  application/octet-stream, as a proxy or object store may relabel it), `list_400` (`GET /v1/videos`
  answers 400 with LiteLLM's JSON error "LLM Provider NOT provided", BerriAI/litellm#22130; the list
  carries no prompt, so set it in a channel's `X-Fake` header).
- vendor dialects, besides the faults above (each answered in its vendor's error envelope): Veo
  `filtered` (done, `raiMediaFilteredCount` 1, no video), `op_error=CODE` (done with an error),
  `no_video`, `inline_video` (the sample carries the bytes), `uri_on_cdn` (the result on another
  origin); Seedance `ark_429=CODE` (which 429 code), `moderation=image` (the input image refused);
  DashScope `http200_error=N` (a create answered 200 with an error code and no task); Kling
  `http200_error=N` and `kling_code=CODE` (the code of that answer and of `#429`); MiniMax
  `http200_error=N` and `minimax_code=CODE` (the `base_resp` code of that answer); fal
  `exhausted_balance=N` (403, a locked account) and `error_in_status` (a failed request's status carries
  its error); Replicate and OpenRouter `payment_required=N` (402), Replicate `output_list` (the output a
  list of URLs).
- shapes: `synonyms`, `unknown_status=N`, `progress_str` (both dialects); `envelope`,
  `ts=s|ms|iso|datetime`, `bare_id`, `error_string`, `url_list`, `hide_watermark` (unified: `watermarked`
  stays null, as most relays say nothing about marks).
"""

from vidgate.testing.fake_upstream.app import FakeUpstream, create_fake_upstream_app, serve_fake_upstream
from vidgate.testing.fake_upstream.directives import Directives, parse_directives
from vidgate.testing.fake_upstream.journal import Journal, JournalEntry

__all__ = [
    "Directives",
    "FakeUpstream",
    "Journal",
    "JournalEntry",
    "create_fake_upstream_app",
    "parse_directives",
    "serve_fake_upstream",
]
