package dev.liteship.demo;

/** The result's device block (from android.os.Build on the phone). */
public final class DeviceFacts {
    public final String model;
    public final String manufacturer;
    public final String androidVersion;
    public final int sdkInt;
    public final String abi;

    public DeviceFacts(String model, String manufacturer, String androidVersion, int sdkInt, String abi) {
        this.model = model == null ? "" : model;
        this.manufacturer = manufacturer == null ? "" : manufacturer;
        this.androidVersion = androidVersion == null ? "" : androidVersion;
        this.sdkInt = sdkInt;
        this.abi = abi == null ? "" : abi;
    }
}
