// Top-level build file of the liteship demo app. AGP 8.9 needs Gradle 8.11.1+ and JDK 17.
plugins {
    id("com.android.application") version "8.9.1" apply false
}
