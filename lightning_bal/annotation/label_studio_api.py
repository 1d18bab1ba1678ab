"""A small client of Label Studio's HTTP API (standard library only), for ``lightning-bal sync``.

The token stays out of every message, ``repr`` and file (docs/label_studio_sync.md#authentication).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

if TYPE_CHECKING:
    from lightning_bal.annotation.answers import AnswerKind

__all__ = ["TOKEN_ENV", "LabelStudioClient", "check_label_config", "check_url", "token_from_env"]

#: The environment variable the command line reads the token from unless told another.
TOKEN_ENV = "LABEL_STUDIO_TOKEN"


def check_url(name: str, url: Any) -> str:
    """``url`` without its trailing slash, if it is the base URL of a server (``http(s)://host[:port][/prefix]``)."""
    if not isinstance(url, str) or not url:
        raise TypeError(f"Expected `{name}` to be a non-empty URL string, but got {url!r}.")
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise ValueError(
            f"Expected `{name}` to be the server's base URL, such as 'http://127.0.0.1:8080', but got {url!r}."
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        # Credentials in a URL end up in logs and shell history; the token goes through its environment variable.
        raise ValueError(
            f"Expected `{name}` to be a base URL without credentials, query or fragment, but got"
            f" {parts._replace(netloc=parts.hostname, query='', fragment='').geturl()!r} with them."
        )
    return url.rstrip("/")


def token_from_env(name: str = TOKEN_ENV) -> str:
    """The token held by the environment variable ``name`` (checked, never shown)."""
    if not isinstance(name, str) or not name or "=" in name:
        raise ValueError(f"Expected `--token-env` to name an environment variable, but got {name!r}.")
    token = os.environ.get(name)
    if not token:
        raise ValueError(
            f"Expected the environment variable {name} (`--token-env`) to hold a Label Studio personal access token,"
            " but it is not set or empty."
        )
    return _check_token(f"the environment variable {name}", token)


def _check_token(where: str, token: Any) -> str:
    if not isinstance(token, str) or not token:
        raise TypeError(f"Expected {where} to be a non-empty token string, but got {type(token).__name__}.")
    if not re.fullmatch(r"[A-Za-z0-9._\-]+", token):
        # The token goes into an HTTP header; whitespace or quotes are a paste accident (or header injection).
        raise ValueError(
            f"Expected {where} to be a Label Studio token (letters, digits, '.', '_', '-'), but it holds other"
            " characters (a quote, space or line break pasted with it?)."
        )
    return token


# The controls whose answers a run of each task reads (docs/annotators.md#answer-types), by the task's name.
_CONTROLS: dict[str | None, tuple[str, ...]] = {
    None: ("Choices", "Number"),
    "classification": ("Choices",),
    "multilabel": ("Choices",),
    "regression": ("Number",),
    "per_position": ("BrushLabels", "PolygonLabels", "Labels"),
}
_KINDS = {"Number": "number", "BrushLabels": "brush", "PolygonLabels": "polygon", "Labels": "spans"}


def check_label_config(
    config: Any, label_names: list[str], data_key: str, from_name: str = "label", task: str | None = None
) -> AnswerKind:
    """The answer kind of the project's control ``from_name``, refused unless it fits the run and its classes.

    The control must label ``toName=data_key`` and fit the run's ``task`` (a task's name; docs/annotators.md#answer-
    types): ``<Choices>`` offering exactly ``label_names``, single for a classification, ``choice="multiple"`` for a
    multi-label run; ``<Number>`` for regression; ``<BrushLabels>``, ``<PolygonLabels>`` or ``<Labels>`` (on text)
    for per-position labels, each of their labels one of ``label_names``.

    Examples:
        >>> check_label_config('<View><Image name="image" value="$image"/><Choices name="label" toName="image"'
        ...                    ' choice="multiple"><Choice value="cat"/><Choice value="dog"/></Choices></View>',
        ...                    ["cat", "dog"], "image", task="multilabel")
        'multichoice'
    """
    try:
        root = ElementTree.fromstring(config) if isinstance(config, str) else None
    except ElementTree.ParseError as err:
        raise ValueError(f"Expected the project's `label_config` to be XML, but it does not parse: {err}") from err
    if root is None:
        raise ValueError(f"Expected the project's `label_config` to be XML text, but got {type(config).__name__}.")
    if task not in _CONTROLS:
        raise ValueError(
            f"Expected a run whose task is one of {sorted(str(name) for name in _CONTROLS)} to read Label Studio"
            f" answers, but its task is {task!r}."
        )
    fitting = _CONTROLS[task]
    controls = [node for node in root.iter() if node.tag in fitting and node.get("name") == from_name]
    if len(controls) != 1:
        others = sorted({node.tag for node in root.iter() if node.get("name") == from_name} - set(fitting))
        tags = "|".join(fitting)
        raise ValueError(
            f'Expected the project\'s `label_config` to hold one <{tags} name="{from_name}"> control, but it holds'
            f" {len(controls)}{f' (it has <{others[0]}>, which a {task} run cannot read)' if others else ''}:"
            " a project for another task?"
        )
    control = controls[0]
    if control.get("toName") != data_key:
        raise ValueError(
            f'Expected the project\'s <{control.tag} name="{from_name}"> to label toName="{data_key}" (`--data-key`),'
            f" but it labels {control.get('toName')!r}."
        )
    if control.tag == "Number":
        return "number"
    if control.tag != "Choices":
        offered = [label.get("value") for label in control.iter("Label")]
        unknown = [name for name in offered if name not in label_names]
        if unknown or not offered:
            raise ValueError(
                f'Expected the project\'s <{control.tag} name="{from_name}"> to offer labels among the classes'
                f" {list(label_names)} (`--labels`), but it offers {offered}: a project of another run?"
            )
        return _KINDS[control.tag]  # type: ignore[return-value]
    names = [choice.get("value") for choice in control.iter("Choice")]
    if names != list(label_names):
        raise ValueError(
            f'Expected the project\'s <Choices name="{from_name}"> to offer the classes {list(label_names)}'
            f" (`--labels`, in class order), but it offers {names}: a project of another run?"
        )
    multiple = control.get("choice") == "multiple"
    if task is not None and multiple != (task == "multilabel"):
        wanted = "several choices" if task == "multilabel" else "one choice"
        raise ValueError(
            f'Expected the project\'s <Choices name="{from_name}"> to take {wanted} for a {task} run, but it has'
            f" choice={control.get('choice', 'single')!r}."
        )
    return "multichoice" if multiple else "choice"


class _Refused(ValueError):
    """The server refused the credentials (HTTP 401/403)."""


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


class LabelStudioClient:
    """Label Studio's HTTP API at ``url`` (e.g. ``http://127.0.0.1:8080``) with a personal access or legacy token.

    Args:
        timeout: seconds to wait for each answer.

    Examples:
        >>> client = LabelStudioClient("http://127.0.0.1:8080", "0123456789abcdef0123456789abcdef01234567")
        >>> client
        LabelStudioClient('http://127.0.0.1:8080')
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = check_url("url", url)
        self._token = _check_token("argument `token`", token)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"Expected argument `timeout` to be a positive number of seconds, but got {timeout!r}.")
        self.timeout = float(timeout)
        self._authorization: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _send(self, method: str, path: str, body: Any, authorization: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=headers,
        )
        what = f"{method} {path.split('?')[0]}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise _Refused(
                    f"Expected Label Studio at {self.url} to accept the token (`--token-env`), but {what} was refused"
                    f" with HTTP {err.code}: an expired, revoked or mistyped personal access token?"
                ) from None
            if err.code == 404:
                raise ValueError(f"Expected Label Studio at {self.url} to know {what}, but it answered 404.") from None
            raise ConnectionError(
                f"Label Studio at {self.url} failed {what} with HTTP {err.code}; nothing was changed here, run sync"
                " again once the server is healthy."
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ConnectionError(
                f"Expected Label Studio to answer at {self.url}, but {what} failed: {reason}. Nothing was changed"
                " here; run sync again when the server is up."
            ) from None
        try:
            return json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(
                f"Expected Label Studio at {self.url} to answer {what} with JSON, but it did not: is `--url` a Label"
                " Studio server?"
            ) from None

    def _login(self) -> str:
        if not _is_jwt(self._token):
            return f"Token {self._token}"
        answer = self._send("POST", "/api/token/refresh/", {"refresh": self._token}, None)
        access = answer.get("access") if isinstance(answer, dict) else None
        if not isinstance(access, str) or not access:
            raise ValueError(f"Expected Label Studio at {self.url} to exchange the token for an access token.")
        return f"Bearer {access}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send ``method path`` (JSON ``body``) and return the decoded JSON answer (logging in on first use)."""
        if self._authorization is None:
            self._authorization = self._login()
        try:
            return self._send(method, path, body, self._authorization)
        except _Refused:
            if not _is_jwt(self._token):
                raise
        # Access tokens live minutes: a long sync may outlive one, and the refresh token gets a new one.
        self._authorization = self._login()
        return self._send(method, path, body, self._authorization)

    def project(self, project: int | str) -> dict[str, Any]:
        """The project with id ``project`` (an int or a string of digits), else the one titled ``project``."""
        if isinstance(project, bool) or not isinstance(project, (int, str)) or project == "":
            raise TypeError(f"Expected `--project` to be a project id or title, but got {project!r}.")
        if isinstance(project, int) or project.isdigit():
            try:
                found = self.request("GET", f"/api/projects/{int(project)}")
            except ValueError as err:
                if "404" not in str(err):
                    raise
                raise ValueError(
                    f"Expected `--project` to name a project of {self.url}, but id {project} is not one."
                ) from None
            return _checked_project(found, self.url)
        listed: list[Any] = []
        for page in itertools.count(1):
            answer = self.request("GET", f"/api/projects?page={page}&page_size=100")
            results = answer.get("results") if isinstance(answer, dict) else answer
            if not isinstance(results, list):
                raise ValueError(f"Expected Label Studio at {self.url} to list its projects, but got {answer!r:.200}.")
            listed.extend(results)
            if not (isinstance(answer, dict) and answer.get("next")):
                break
        matches = [found for found in listed if isinstance(found, dict) and found.get("title") == project]
        if len(matches) != 1:
            titles = [str(found.get("title")) if isinstance(found, dict) else "?" for found in listed]
            problem = "is not one" if not matches else f"names {len(matches)} (give the id instead)"
            raise ValueError(
                f"Expected `--project` to name one project of {self.url}, but the title {project!r} {problem};"
                f" projects: {sorted(titles)[:10]}."
            )
        return _checked_project(matches[0], self.url)

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (Label Studio's JSON export, unfinished tasks included)."""
        answer = self.request("GET", f"/api/projects/{project_id}/export?exportType=JSON&download_all_tasks=true")
        if not isinstance(answer, list):
            raise ValueError(f"Expected Label Studio at {self.url} to export a list of tasks, but got {answer!r:.200}.")
        return answer

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        """Add ``tasks`` (with their predictions) to the project in one request."""
        self.request("POST", f"/api/projects/{project_id}/import", tasks)


def _checked_project(found: Any, url: str) -> dict[str, Any]:
    if not isinstance(found, dict) or not isinstance(found.get("id"), int) or "label_config" not in found:
        raise ValueError(
            f"Expected Label Studio at {url} to describe the project (id, label_config), but got {found!r:.200}."
        )
    return found
