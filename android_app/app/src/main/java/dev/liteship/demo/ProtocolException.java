package dev.liteship.demo;

/** A request, model or input the app cannot serve; the message says what to change. */
public final class ProtocolException extends Exception {
    public ProtocolException(String message) {
        super(message);
    }

    public ProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
