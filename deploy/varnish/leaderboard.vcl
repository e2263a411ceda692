# Varnish 7 in front of the leaderboard API: the built-in VCL, plus stale-if-error.
#
# The API's Cache-Control is all Varnish needs for fresh and stale answers: max-age becomes the TTL and
# stale-while-revalidate the grace (served while a background fetch revalidates with If-None-Match).
# What the built-in VCL does not do is stale-if-error: it serves the stale copy while its grace
# (stale-while-revalidate) lasts, failing background fetches or not, but past grace it goes to the
# origin and passes its 5xx through. This file keeps serving the copy for as long as the answer's
# stale-if-error allows:
#
#   within stale-while-revalidate  the copy is served and revalidated in the background (built-in);
#                                  a 5xx from that fetch is dropped, never stored
#   past it, within stale-if-error the request revalidates in the foreground (restart with grace 0);
#                                  on a 5xx it restarts once more and is served the copy
#   past stale-if-error            the origin's answer, whatever it is
#
# Cost while the origin fails: one origin request per client request that finds only a stale copy
# (cheap: the API answers 503 within its Valkey timeout). Requests for one URL queue behind each other's
# failing fetch (Varnish lets one fetch per object run at a time).
#
# Use: varnishd -f leaderboard.vcl -a :80 -s malloc,256m (set the backend below). Tested by
# tests/e2e/test_varnish.py, which runs a workload through it and through the built-in VCL.

vcl 4.1;

import std;

backend default {
    .host = "127.0.0.1";
    .port = "8000";
}

sub vcl_recv {
    if (req.restarts == 0) {
        unset req.http.X-Stale-If-Error;  # our own marker: never taken from a client
    } elsif (req.http.X-Stale-If-Error == "revalidate") {
        set req.grace = 0s;  # a stale copy is not good enough: fetch now (it is the 304 candidate)
    } else {
        set req.grace = 3650d;  # "serve": any copy that the object's grace still covers
    }
}

sub vcl_hit {
    if (obj.ttl >= 0s || req.http.X-Stale-If-Error == "serve") {
        return (deliver);
    }
    if (obj.ttl + std.duration(regsub(obj.http.Cache-Control,
            "^.*stale-while-revalidate=([0-9]+).*$", "\1s"), 0s) > 0s) {
        return (deliver);  # within stale-while-revalidate: served, revalidated in the background
    }
    set req.http.X-Stale-If-Error = "revalidate";
    return (restart);
}

sub vcl_synth {
    # The foreground revalidation failed (abandoned below): serve the stale copy.
    if (resp.status == 503 && req.http.X-Stale-If-Error == "revalidate") {
        set req.http.X-Stale-If-Error = "serve";
        return (restart);
    }
}

sub vcl_backend_fetch {
    if (bereq.is_bgfetch && bereq.http.X-Stale-If-Error == "serve") {
        return (abandon);  # the copy was served because the origin just failed: do not ask again
    }
}

sub vcl_backend_response {
    # Keep the object until stale-if-error ends (Varnish deletes it after TTL + grace + keep);
    # vcl_hit above still holds it to stale-while-revalidate while the origin answers.
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        if (std.duration(regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s)
                > beresp.grace) {
            set beresp.grace = std.duration(
                regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s);
        }
    }
    if (beresp.status >= 500 && (bereq.is_bgfetch || bereq.http.X-Stale-If-Error == "revalidate")) {
        return (abandon);  # keep the cached copy
    }
}

sub vcl_backend_error {
    if (bereq.is_bgfetch || bereq.http.X-Stale-If-Error == "revalidate") {
        return (abandon);  # the origin cannot be reached: keep the cached copy
    }
}
