// Top-level build file of the liteship demo app. AGP 8.9 needs Gradle 8.11.1+ and JDK 17; AGP >= 8.5.1
// zip-aligns uncompressed native libraries to 16 KB.
plugins {
    id("com.android.application") version "8.9.1" apply false
}
