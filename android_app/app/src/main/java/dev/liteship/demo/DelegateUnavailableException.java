package dev.liteship.demo;

/** The requested delegate cannot be created on this device (reported as status "unavailable"). */
public final class DelegateUnavailableException extends Exception {
    public DelegateUnavailableException(String message) {
        super(message);
    }

    public DelegateUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
