package orchestrator

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// jobPathPrefix is the route of jobs; what follows it is the job's path,
// sent on to the worker below its registered URL.
const jobPathPrefix = "/process/request/"

// jobPath returns the job's path as the client escaped it (what follows
// /process/request/, "" for none). It refuses a path that could leave the
// worker's registered URL: a "." or ".." segment, however spelled (%2e,
// or hidden behind an encoded "/" or "\"), and a path that is not a valid
// escaping. The query is not part of it: like go-livepeer, the
// orchestrator does not pass it on.
func jobPath(r *http.Request) (string, error) {
	escaped := r.URL.EscapedPath()
	if !strings.HasPrefix(escaped, jobPathPrefix) {
		return "", errors.New("the job path must start with " + jobPathPrefix)
	}
	p := escaped[len(jobPathPrefix):]
	decoded, err := url.PathUnescape(p)
	if err != nil {
		return "", errors.New("the job path is not validly escaped")
	}
	for _, seg := range strings.FieldsFunc(decoded, func(c rune) bool { return c == '/' || c == '\\' }) {
		if seg == "." || seg == ".." {
			return "", errors.New("the job path may not contain . or .. segments")
		}
	}
	return p, nil
}

// workerURL is where a job goes: the worker's registered URL, with the
// job's path (from jobPath) appended as "/" + path when there is one. The
// path stays escaped as the client sent it, so an encoded "/", "?" or "#"
// reaches the worker encoded, inside the path.
func workerURL(registered, path string) (string, error) {
	if path == "" {
		return registered, nil
	}
	u, err := url.Parse(registered)
	if err != nil {
		return "", err
	}
	raw := u.EscapedPath() + "/" + path
	if u.Path, err = url.PathUnescape(raw); err != nil {
		return "", err
	}
	u.RawPath, u.Fragment, u.RawFragment = raw, "", ""
	return u.String(), nil
}
