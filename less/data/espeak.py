"""espeak-ng speech synthesis and phonemes through ctypes (the library that ``espeakng_loader``
ships).

Why ctypes rather than the ``espeak-ng`` command line: no system package is needed, and
one in-process library instance synthesizes a sentence in milliseconds. espeak-ng keeps
global state (current voice, parameters, the sample callback, and waveform-generator
state that carries over from one utterance to the next), so synthesis runs in a small
server process that forks a pristine child per utterance (:class:`_SynthesisServer`);
one server per client process, guarded by a lock; parallel synthesis uses processes.

Facts established by experiment (espeak-ng data of ``espeakng_loader`` 0.2.x):

* the ``cmn`` dictionary is present and voices every character the mini grammar emits as
  one syllable (checked with :func:`unvoiced_characters`); tone 2 is written ``ɜ`` in its
  phoneme strings, the other tones as digits;
* a character missing from the dictionary is NOT skipped: espeak reads its code point
  number aloud (U+20000 comes out as "二零零零零"), so a silent failure would put wrong
  audio under a right label. The corpus builder checks every character up front;
* an unknown voice name returns error 2 from ``espeak_SetVoiceByName``;
* output is 16-bit mono at 22,050 Hz; we resample to 16 kHz.

Phone timings (:func:`synthesize_with_phones`) come from espeak-ng's own phoneme events
(``espeakEVENT_PHONEME``), switched on with ``espeak_ng_SetPhonemeEvents`` in the forked
child of a phone request only, so plain synthesis runs exactly as before. Facts found by
experiment (``tests/data/test_phone_alignments.py`` pins the ones we rely on):

* the event struct (``espeak_EVENT`` of ``speak_lib.h``) is 40 bytes on x86_64: six 4-byte
  ints (type, unique_identifier, text_position, length, audio_position, sample), the
  ``user_data`` pointer at offset 24, the ``id`` union (int / char* / char[8]) at 32;
* ``sample`` is the exact sample index (22,050 Hz) from the start of the synthesis;
  ``audio_position`` is the same in whole milliseconds (truncated), so we use ``sample``;
* names are IPA (``espeakINITIALIZE_PHONEME_IPA``): readable and comparable across
  languages. espeak writes them into the 8-byte ``id.string`` (no NUL when a name fills
  all 8 bytes); the longest seen in the mini corpus is 6 bytes (``ˈonɡ``). Stress marks
  ``ˈ ˌ`` are removed (a stressed and an unstressed /o/ are one phone);
* pauses come as phoneme events with an EMPTY IPA name (their ASCII mnemonics are ``_|``
  at word boundaries, zero length in Mandarin; ``_:`` at the end of a clause; ``_`` at the
  end): a pause ends the phone before it and is not itself a phone;
* Mandarin tones are not phonemes of their own: no event carries them, the vowels come
  without tone (``n i``, ``m i ŋ``, ``th iɛ n``, ``j iou``, ``kh onɡ``, ``m ɑ``);
  Spanish: ``e l p ɾ o f e s o ɾ``; aspiration is written ``h`` (``th``, ``kh``, ``tɕh``);
* a vowel after a nasal or a liquid gets its event after the transition into it (espeak
  emits it late on purpose), so such a vowel starts a little after the acoustic boundary.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
ESPEAK_SAMPLE_RATE = 22050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_PHONEMES_IPA = 0x02
_EVENT_LIST_TERMINATED, _EVENT_END, _EVENT_PHONEME = 0, 5, 7
_STRESS_MARKS = str.maketrans("", "", "ˈˌ")

# Tone marks in cmn phoneme strings: one per voiced syllable.
_CMN_TONE = re.compile(r"[1-5ɜ]")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` of espeak-ng's ``speak_lib.h`` (natural alignment: 40 bytes on x86_64)."""

    _fields_ = [
        ("type", ctypes.c_int),  # espeak_EVENT_TYPE (an enum: int)
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, 1-based
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # ms from the start of the synthesis
        ("sample", ctypes.c_int),  # sample index from the start of the synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),  # phoneme events: the name in ``string`` (not NUL-terminated at 8 bytes)
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)

PhoneEvents = tuple[list[tuple[str, int]], int]  # [(IPA name, 22,050 Hz sample)], end sample


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, or refused a voice or a text."""


class _Engine:
    """The process's espeak-ng instance. Create through :func:`engine` only."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:  # pragma: no cover - dependency of the package
            raise EspeakError(
                "espeakng_loader is not installed: pip install espeakng-loader"
            ) from err
        library_path = Path(espeakng_loader.get_library_path())
        data_path = Path(espeakng_loader.get_data_path())
        if not library_path.is_file():
            raise EspeakError(f"espeak-ng library not found at {library_path}")
        if not (data_path / "phontab").is_file():
            raise EspeakError(f"espeak-ng data not found at {data_path} (no phontab)")
        try:
            self.lib = ctypes.CDLL(str(library_path))
        except OSError as err:
            raise EspeakError(f"cannot load espeak-ng library {library_path}: {err}") from err
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetPhonemeEvents.argtypes = [ctypes.c_int, ctypes.c_int]
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), _INITIALIZE_DONT_EXIT
        )
        if sample_rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(
                f"espeak_Initialize failed or returned an unexpected sample rate ({sample_rate})"
            )
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str, int]] | None = (
            None  # (type, name, sample) while recording
        )
        self._callback = _SynthCallback(self._collect)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        self.pid = os.getpid()

    def _collect(self, samples, num_samples: int, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(num_samples,)).copy())
        if self._events is not None and events:
            index = 0
            while events[index].type != _EVENT_LIST_TERMINATED:
                event = events[index]
                if event.type in (_EVENT_PHONEME, _EVENT_END):
                    name = (
                        event.id.string.decode("utf-8", "ignore")
                        if event.type == _EVENT_PHONEME
                        else ""
                    )
                    self._events.append((event.type, name, event.sample))
                index += 1
        return 0

    def set_voice(self, voice: str) -> None:
        if voice != self._voice:
            code = self.lib.espeak_SetVoiceByName(voice.encode())
            if code != 0:
                raise EspeakError(f"espeak-ng voice {voice!r} is not available (error {code})")
            self._voice = voice

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """Raw int16 samples at 22,050 Hz."""
        self._events = None
        return self._synthesize(text, voice, rate, pitch)

    def synthesize_with_events(
        self, text: str, voice: str, rate: int, pitch: int
    ) -> tuple[np.ndarray, PhoneEvents]:
        """Raw samples and the phoneme events (IPA names, '' for a pause) with their sample
        indices, and the sample of the end event (the number of samples when there is none).

        Turns phoneme events on for good: call it in a throw-away (forked) process only."""
        self.lib.espeak_ng_SetPhonemeEvents(1, 1)
        self._events = []
        try:
            audio = self._synthesize(text, voice, rate, pitch)
            events = self._events
        finally:
            self._events = None
        phones = [(name, sample) for kind, name, sample in events if kind == _EVENT_PHONEME]
        ends = [sample for kind, _, sample in events if kind == _EVENT_END]
        return audio, (phones, ends[-1] if ends else len(audio))

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        self.set_voice(voice)
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks = []
        data = text.encode("utf-8")
        code = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if code != 0:
            raise EspeakError(
                f"espeak_Synth failed (error {code}) for {text!r} with voice {voice!r}"
            )
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    def phonemes(self, text: str, voice: str) -> str:
        self.set_voice(voice)
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        pieces = []
        while pointer.value:
            result = self.lib.espeak_TextToPhonemes(
                ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA
            )
            if result is None:
                break
            pieces.append(result.decode("utf-8"))
        return " ".join(p for p in pieces if p)


class _SynthesisServer:
    """A helper process that forks a fresh child for every synthesis.

    espeak-ng's waveform generator keeps static state across utterances (e.g. the pitch
    flutter index ``Flutter_ix`` in ``AdvanceParameters``, never reset, not even by
    ``espeak_Initialize``), so the same text with the same voice sounds slightly
    different depending on what was synthesized before. The server initializes espeak
    once and never synthesizes itself; each request runs in a forked child that starts
    from that pristine state, which makes every utterance a function of its arguments
    only: same corpus seed, same audio, whatever the order or the number of jobs.
    A separate small process keeps the fork cheap (the caller may hold torch).
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pid = os.getpid()
        status = self.process.stdout.readline().decode("utf-8", "replace").strip()
        if status != "OK":
            self.close()
            raise EspeakError(
                f"espeak-ng synthesis server failed to start: {status or 'no answer'}"
            )
        atexit.register(self.close)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> np.ndarray:
        status, payload = self._ask(text, voice, rate, pitch, seed, phones=False)
        if status != b"A":
            raise EspeakError(f"bad answer {status!r} from the synthesis server for {text!r}")
        return np.frombuffer(payload, dtype=np.int16)

    def synthesize_with_events(
        self, text: str, voice: str, rate: int, pitch: int, seed: int
    ) -> tuple[np.ndarray, PhoneEvents]:
        """Answer ``P``: the audio block, then a JSON block ``{"phones": [[name, sample], ...],
        "end": sample}``."""
        status, audio = self._ask(text, voice, rate, pitch, seed, phones=True)
        if status != b"P":
            raise EspeakError(f"bad answer {status!r} from the synthesis server for {text!r}")
        _, payload = self._read_block(text, voice)
        events = json.loads(payload)
        return np.frombuffer(audio, dtype=np.int16), (
            [(str(name), int(sample)) for name, sample in events["phones"]],
            int(events["end"]),
        )

    def _ask(
        self, text: str, voice: str, rate: int, pitch: int, seed: int, phones: bool
    ) -> tuple[bytes, bytes]:
        request = {
            "text": text,
            "voice": voice,
            "rate": int(rate),
            "pitch": int(pitch),
            "seed": int(seed),
        }
        if phones:  # absent from plain requests: those are exactly what they always were
            request["phones"] = True
        try:
            self.process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise EspeakError(
                f"espeak-ng synthesis server died while speaking {text!r} with {voice!r}"
            ) from err
        status, payload = self._read_block(text, voice)
        if status == b"E":
            raise EspeakError(
                payload.decode("utf-8", "replace") or f"synthesis failed for {text!r}"
            )
        return status, payload

    def _read_block(self, text: str, voice: str) -> tuple[bytes, bytes]:
        """One answer block: a status byte, a little-endian uint32 length, the payload."""
        try:
            header = self.process.stdout.read(5)
            if len(header) != 5:
                raise EOFError
            status, length = header[:1], struct.unpack("<I", header[1:])[0]
            payload = self.process.stdout.read(length)
            if len(payload) != length:
                raise EOFError
        except (EOFError, OSError) as err:
            raise EspeakError(
                f"espeak-ng synthesis server died while speaking {text!r} with {voice!r}"
            ) from err
        return status, payload

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _block(status: bytes, payload: bytes) -> bytes:
    return status + struct.pack("<I", len(payload)) + payload


def _serve() -> int:
    """Server loop (``python -m less.data.espeak --serve``): one JSON request per line.

    Answers: ``A`` + audio (int16 at 22,050 Hz); with ``"phones": true`` in the request,
    ``P`` + audio then ``J`` + the phoneme events as JSON; ``E`` + a message on failure.
    Each block is a status byte, a little-endian uint32 length and the payload."""
    out = sys.stdout.fileno()
    try:
        eng = _Engine()
        eng.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    except Exception as err:  # reported to the client, which raises EspeakError
        _write_all(out, f"ERR {err}\n".encode())
        return 1
    _write_all(out, b"OK\n")
    for line in sys.stdin.buffer:
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            try:
                eng.lib.espeak_ng_SetRandSeed(request["seed"])
                arguments = (request["text"], request["voice"], request["rate"], request["pitch"])
                if request.get("phones"):
                    audio, (phones, end) = eng.synthesize_with_events(*arguments)
                    events = json.dumps({"phones": phones, "end": end}).encode("utf-8")
                    answer = _block(b"P", audio.astype("<i2").tobytes()) + _block(b"J", events)
                else:
                    audio = eng.synthesize(*arguments)
                    answer = b"A" + struct.pack("<I", audio.nbytes) + audio.astype("<i2").tobytes()
            except Exception as err:
                message = str(err).encode("utf-8")
                answer = b"E" + struct.pack("<I", len(message)) + message
            _write_all(out, answer)
            os._exit(0)
        _, code = os.waitpid(child, 0)
        if code != 0:
            message = f"synthesis child exited with status {code} for {request['text']!r}".encode()
            _write_all(out, b"E" + struct.pack("<I", len(message)) + message)
    return 0


_ENGINE: _Engine | None = None  # for phoneme look-ups only; never synthesizes
_SERVER: _SynthesisServer | None = None
_LOCK = threading.RLock()


def engine() -> _Engine:
    """The process-wide engine for phoneme look-ups (created again in a forked child)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None or _ENGINE.pid != os.getpid():
            _ENGINE = _Engine()
        return _ENGINE


def _server() -> _SynthesisServer:
    global _SERVER
    with _LOCK:
        if _SERVER is None or _SERVER.pid != os.getpid() or _SERVER.process.poll() is not None:
            _SERVER = _SynthesisServer()
        return _SERVER


def synthesize(
    text: str, voice: str, rate: int = 170, pitch: int = 50, trim_pad_s: float = 0.05, seed: int = 0
) -> np.ndarray:
    """Speak ``text``: float32 mono at 16 kHz, leading/trailing silence trimmed to ``trim_pad_s``.

    Deterministic in its arguments (``seed`` drives espeak's noise generator). Trimming
    makes the audio start and end with speech, so the offsets of utterances placed into
    long recordings are the true speech boundaries.
    """
    with _LOCK:
        raw = _server().synthesize(text, voice, rate, pitch, seed)
    audio, _ = _resample_and_trim(raw, text, voice, trim_pad_s)
    return audio


def synthesize_with_phones(
    text: str, voice: str, rate: int = 170, pitch: int = 50, trim_pad_s: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """:func:`synthesize`'s audio (the same samples) and its phones ``(IPA name, start s,
    end s)`` on that audio's time line, from espeak-ng's own phoneme events.

    Exact phone timings for ABX, where a forced alignment with a trained model would be
    a guess. See the module docstring for what the names look like and how pauses are
    treated (:func:`phone_segments`).
    """
    with _LOCK:
        raw, (events, end) = _server().synthesize_with_events(text, voice, rate, pitch, seed)
    audio, start = _resample_and_trim(raw, text, voice, trim_pad_s)
    return audio, phone_segments(events, end, start / SAMPLE_RATE, len(audio) / SAMPLE_RATE)


def _resample_and_trim(
    raw: np.ndarray, text: str, voice: str, trim_pad_s: float
) -> tuple[np.ndarray, int]:
    """Float audio at 16 kHz trimmed to ``trim_pad_s`` around the speech, and the index of its
    first sample in the untrimmed 16 kHz audio."""
    from scipy.signal import resample_poly

    if raw.size == 0:
        raise EspeakError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
    audio = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLE_RATE, ESPEAK_SAMPLE_RATE).astype(
        np.float32
    )
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    pad = int(trim_pad_s * SAMPLE_RATE)
    start = max(0, loud[0] - pad)
    return audio[start : loud[-1] + pad + 1], int(start)


def phone_segments(
    events: list[tuple[str, int]], end_sample: int, offset_s: float, duration_s: float
) -> list[tuple[str, float, float]]:
    """Phoneme events (name, 22,050 Hz sample) -> phones ``(name, start s, end s)``.

    A phone runs from its event to the next event, pause or not (so a pause's time is
    no phone's), the last one to ``end_sample``. Pauses (empty names) are dropped, stress
    marks removed. Times: ``sample / 22050 - offset_s`` (zero-phase polyphase resampling
    keeps a time instant where it was, so a 22,050 Hz position maps to 16 kHz exactly as
    the samples do), clipped to ``[0, duration_s]``; phones with nothing left (e.g. the
    zero-length ones at word joins, or cut by the trimming) are dropped.
    """
    bounds = [sample for _, sample in events[1:]] + [end_sample]
    phones = []
    for (name, sample), next_sample in zip(events, bounds):
        name = name.translate(_STRESS_MARKS)
        start = min(max(sample / ESPEAK_SAMPLE_RATE - offset_s, 0.0), duration_s)
        end = min(max(next_sample / ESPEAK_SAMPLE_RATE - offset_s, 0.0), duration_s)
        if name and end > start:
            phones.append((name, start, end))
    return phones


def phonemes(text: str, voice: str) -> str:
    with _LOCK:
        return engine().phonemes(text, voice)


def pronouncer(voice: str = "cmn"):
    """``char -> its phonemes`` for ``voice``; '' for a character espeak-ng cannot read (the
    LLM corrector's confusion sets skip it, SpeechLM's lexicon gives it ``<unk>``)."""

    def pronounce(char: str) -> str:
        try:
            return phonemes(char, voice)
        except Exception:  # noqa: BLE001 - an unreadable character, not a broken engine
            return ""

    return pronounce


def check_voice(voice: str) -> None:
    """Raise :class:`EspeakError` unless ``voice`` loads and speaks."""
    synthesize("1", voice)


def unvoiced_characters(characters: str | set[str], voice: str = "cmn") -> list[str]:
    """Han characters that the Mandarin voice does not read as exactly one syllable."""
    bad = []
    for char in sorted(set(characters)):
        if len(_CMN_TONE.findall(phonemes(char, voice))) != 1:
            bad.append(char)
    return bad


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: python -m less.data.espeak --serve  (internal synthesis server)")
    sys.exit(_serve())
